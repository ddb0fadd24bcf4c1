"""Text in spreadsheet cells, neutralised against formula injection.

A CSV or xlsx file that a council officer opens in Excel or LibreOffice must never run what a
caller, a telephone network (a CDR's queue name) or an organisation file put in a text field:
a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a
formula (OWASP, "CSV Injection"). Every writer of a CSV or xlsx file passes each text cell
through :func:`cell_text`, which prefixes such a cell with a single quote, as OWASP advises;
:func:`plain_text` undoes it for the readers of oohcore's own CSV formats (CDRs, rota shifts),
so a file oohcore wrote reads back as it was. Numbers are written as numbers, never as text.
"""

from __future__ import annotations

__all__ = ["FORMULA_TRIGGERS", "cell_text", "plain_text"]

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
"""The first characters that make a spreadsheet read a cell as a formula (OWASP)."""


def cell_text(value: object) -> str:
    """``value`` as the text of a cell that no spreadsheet reads as a formula."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def plain_text(cell: str) -> str:
    """A cell as :func:`cell_text` was given it (the neutralising quote taken off)."""
    if cell.startswith("'") and cell[1:].startswith(FORMULA_TRIGGERS):
        return cell[1:]
    return cell
