"""Drawing a :class:`~oohcore.reports.model.Report`: CSV, Excel with native charts, HTML.

* **xlsx** (11.9.4: financial and metrical data in Excel): a summary sheet, one sheet per
  table with real numbers in proper formats (percentages, ``[h]:mm:ss`` durations, dates),
  and native Excel charts drawn from those cells (XlsxWriter), so a council officer can re-cut
  the figures.
* **csv**: every table in one file, one after another, each under its title row.
* **html**: one self-contained page (no script, no external file): headline cards that say
  pass or FAIL, the charts drawn as inline SVG, and the tables.
"""

from __future__ import annotations

import csv
import html
import re
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from oohcore.cells import cell_text
from oohcore.errors import OohcoreError
from oohcore.reports.model import Chart, Column, Fmt, Report, Table, display

__all__ = ["FORMATS", "RenderError", "write_csv", "write_html", "write_report", "write_xlsx"]

FORMATS = ("xlsx", "csv", "html")


class RenderError(OohcoreError):
    pass


def write_report(report: Report, path: str | Path, fmt: str | None = None) -> Path:
    """Write ``report`` to ``path`` as ``fmt`` (default: the path's suffix)."""
    p = Path(path)
    chosen = (fmt or p.suffix.lstrip(".")).lower()
    writers = {"xlsx": write_xlsx, "csv": write_csv, "html": write_html}
    if chosen not in writers:
        raise RenderError(f"unknown report format {chosen!r}; choose one of {', '.join(FORMATS)}")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RenderError(f"cannot create the folder {p.parent}: {exc.strerror}") from None
    return writers[chosen](report, p)


def _subtitle(report: Report) -> str:
    return (
        f"{report.organisation_name} — {report.period} — {report.timezone} wall clock — "
        f"generated {report.generated_at:%Y-%m-%d %H:%M} UTC"
    )


def _all_rows(table: Table) -> list[Mapping[str, Any]]:
    return [*table.rows, *([table.total] if table.total is not None else [])]


# ---------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------


def _csv_cell(value: Any, fmt: Fmt = Fmt.TEXT) -> str:
    """A CSV cell: text neutralised against formula injection (:mod:`oohcore.cells`); a
    number (a negative one included) written as the number it is."""
    shown = display(value, fmt)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and fmt is not Fmt.TEXT:
        return shown
    return cell_text(shown)


def write_csv(report: Report, path: Path) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow([_csv_cell(report.title)])
        out.writerow([_csv_cell(_subtitle(report))])
        for h in report.headlines:
            value = cell_text(h.value) if isinstance(h.value, str) else f"{h.value:g}"
            verdict = "" if h.passes is None else ("pass" if h.passes else "FAIL")
            out.writerow([_csv_cell(h.label), value, verdict])
        for table in report.tables:
            out.writerow([])
            out.writerow([_csv_cell(f"{table.title} ({table.clause})")])
            out.writerow([_csv_cell(c.title) for c in table.columns])
            for row in _all_rows(table):
                out.writerow([_csv_cell(row.get(c.key), c.fmt) for c in table.columns])
    return path


# ---------------------------------------------------------------------------------------------
# Excel
# ---------------------------------------------------------------------------------------------

_NUMBER_FORMATS = {
    Fmt.INT: "#,##0",
    Fmt.DECIMAL: "#,##0.00",
    Fmt.PERCENT: "0.00%",
    Fmt.DURATION: "[h]:mm:ss",
    Fmt.MINUTES: "#,##0.0",
    Fmt.DATE: "yyyy-mm-dd",
    Fmt.DATETIME: "yyyy-mm-dd hh:mm:ss",
    Fmt.MONEY: "£#,##0.00",
}


def _sheet_name(title: str, used: set[str]) -> str:
    base = re.sub(r"[\[\]:*?/\\']", "", title)[:31].strip() or "Sheet"
    name, n = base, 2
    while name.lower() in used:
        suffix = f" ({n})"
        name, n = base[: 31 - len(suffix)] + suffix, n + 1
    used.add(name.lower())
    return name


def _cell_value(value: Any, fmt: Fmt) -> Any:
    if value is None:
        return None
    if fmt is Fmt.DURATION:
        return float(value) / 86400  # Excel keeps times as fractions of a day
    if fmt is Fmt.PASS:
        return "pass" if value else "FAIL"
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)  # already on the organisation's clock
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float, date)):
        return value
    return str(value)


def write_xlsx(report: Report, path: Path) -> Path:
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path), {"default_date_format": "yyyy-mm-dd"})
    try:
        bold = book.add_format({"bold": True})
        title = book.add_format({"bold": True, "font_size": 14})
        header = book.add_format(
            {"bold": True, "bg_color": "#DDE6F0", "text_wrap": True, "valign": "top"}
        )
        good = book.add_format({"font_color": "#1B6E20", "bold": True})
        bad = book.add_format({"font_color": "#B00020", "bold": True})
        formats = {fmt: book.add_format({"num_format": nf}) for fmt, nf in _NUMBER_FORMATS.items()}
        total_formats = {
            fmt: book.add_format({"num_format": nf, "bold": True, "top": 1})
            for fmt, nf in _NUMBER_FORMATS.items()
        }
        total_text = book.add_format({"bold": True, "top": 1})
        used: set[str] = set()
        summary = book.add_worksheet(_sheet_name("Summary", used))
        summary.write_string(0, 0, cell_text(report.title), title)
        summary.write_string(1, 0, cell_text(_subtitle(report)))
        summary.set_column(0, 0, 48)
        summary.set_column(1, 1, 60)
        row = 3
        for h in report.headlines:
            summary.write_string(row, 0, cell_text(h.label), bold)
            if isinstance(h.value, (int, float)) and not isinstance(h.value, bool):
                summary.write_number(row, 1, h.value)
            else:
                summary.write_string(row, 1, cell_text(h.value))
            if h.passes is not None:
                summary.write_string(
                    row, 2, "pass" if h.passes else "FAIL", good if h.passes else bad
                )
            row += 1
        placed: dict[str, tuple[str, int, int, Table]] = {}
        for table in report.tables:
            sheet_name = _sheet_name(table.title, used)
            ws = book.add_worksheet(sheet_name)
            ws.write_string(0, 0, cell_text(f"{table.title} ({table.clause})"), title)
            if table.note:
                ws.write_string(1, 0, cell_text(table.note))
            for col, column in enumerate(table.columns):
                ws.write_string(2, col, cell_text(column.title), header)
                width = 22 if column.fmt in (Fmt.TEXT, Fmt.DATETIME) else 12
                ws.set_column(col, col, width)
            ws.freeze_panes(3, 0)
            for r, values in enumerate(table.rows, start=3):
                for col, column in enumerate(table.columns):
                    _write_cell(
                        ws, r, col, values.get(column.key), column, formats, good, bad, None
                    )
            last = 3 + len(table.rows) - 1
            if table.total is not None:
                r = 3 + len(table.rows)
                for col, column in enumerate(table.columns):
                    _write_cell(
                        ws,
                        r,
                        col,
                        table.total.get(column.key),
                        column,
                        total_formats,
                        good,
                        bad,
                        total_text,
                    )
            placed[table.key] = (sheet_name, 3, last, table)
            if table.rows:
                ws.autofilter(2, 0, last, len(table.columns) - 1)
        below = row + 2
        for chart in report.charts:
            where = placed.get(chart.table)
            if where is None or where[2] < where[1]:
                continue  # no rows, nothing to draw
            # beside its table, and again on the summary sheet under the headlines
            book.get_worksheet_by_name(where[0]).insert_chart(
                where[2] + 3, 1, _make_chart(book, chart, where, 360)
            )
            summary.insert_chart(below, 0, _make_chart(book, chart, where, 320))
            below += 17
    finally:
        book.close()
    return path


def _write_cell(
    ws: Any,
    r: int,
    c: int,
    value: Any,
    column: Column,
    formats: Mapping[Fmt, Any],
    good: Any,
    bad: Any,
    text_format: Any,
) -> None:
    cell = _cell_value(value, column.fmt)
    if cell is None:
        ws.write_blank(r, c, None, text_format)
    elif column.fmt is Fmt.PASS:
        ws.write_string(r, c, cell, good if value else bad)
    elif isinstance(cell, datetime):
        ws.write_datetime(r, c, cell, formats[Fmt.DATETIME])
    elif isinstance(cell, date):
        ws.write_datetime(r, c, datetime(cell.year, cell.month, cell.day), formats[Fmt.DATE])
    elif isinstance(cell, (int, float)):
        ws.write_number(r, c, cell, formats.get(column.fmt, formats[Fmt.DECIMAL]))
    else:
        ws.write_string(r, c, cell_text(cell), text_format)


def _make_chart(book: Any, chart: Chart, where: tuple[str, int, int, Table], height: int) -> Any:
    sheet, first, last, table = where
    keys = [c.key for c in table.columns]
    xc = book.add_chart({"type": chart.kind})
    cat = keys.index(chart.category)
    for key in chart.series:
        if key in keys:
            col = keys.index(key)
            xc.add_series(
                {
                    "name": [sheet, 2, col],
                    "categories": [sheet, first, cat, last, cat],
                    "values": [sheet, first, col, last, col],
                }
            )
    xc.set_title({"name": chart.title})
    xc.set_size({"width": 720, "height": height})
    fmt = table.columns[keys.index(chart.series[0])].fmt if chart.series[0] in keys else Fmt.INT
    if fmt in _NUMBER_FORMATS:
        xc.set_y_axis({"num_format": _NUMBER_FORMATS[fmt]})
    return xc


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:0;color:#1d2733;background:#f4f6f9}
header{background:#16324f;color:#fff;padding:22px 32px}
header h1{margin:0 0 4px;font-size:24px}header p{margin:0;opacity:.85}
main{padding:20px 32px 48px;max-width:1400px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:8px 0 20px}
.card{background:#fff;border-radius:8px;padding:12px 16px;min-width:240px;border-left:6px solid #9aa5b1;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.card.pass{border-color:#2e7d32}.card.fail{border-color:#c62828}
.card b{display:block;font-size:13px;color:#52606d}.card span{font-size:16px}
.card em{float:right;font-style:normal;font-weight:700}.pass em{color:#2e7d32}.fail em{color:#c62828}
.charts{display:flex;flex-wrap:wrap;gap:16px}
figure{background:#fff;margin:0;padding:12px;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
figcaption{font-weight:600;margin-bottom:6px}
section{background:#fff;border-radius:8px;padding:12px 16px;margin:18px 0;box-shadow:0 1px 3px rgba(0,0,0,.08);overflow-x:auto}
h2{font-size:17px;margin:4px 0 10px}h2 small{color:#52606d;font-weight:400}
table{border-collapse:collapse;font-size:13px}
th{background:#e4ebf3;text-align:left;padding:5px 8px;vertical-align:bottom}
td{padding:4px 8px;border-bottom:1px solid #e6e9ee;white-space:nowrap}
td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:700;border-top:2px solid #16324f}
td.ok{color:#2e7d32;font-weight:600}td.no{color:#c62828;font-weight:700}
p.empty{color:#52606d;margin:0}
"""
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _svg_chart(chart: Chart, table: Table) -> str:
    rows = list(table.rows)
    keys = {c.key: c for c in table.columns}
    series = [s for s in chart.series if s in keys]
    if not rows or not series:
        return ""
    fmt = keys[series[0]].fmt
    values = [[float(r.get(s) or 0) for r in rows] for s in series]
    top = max([*(v for vs in values for v in vs), chart.target or 0, 1e-9])
    if fmt is Fmt.PERCENT:
        top = max(top, 1.0)
    width, height, left, bottom, pad = 760, 300, 64, 46, 16
    plot_w, plot_h = width - left - pad, height - bottom - pad
    n = len(rows)
    step = plot_w / n
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 22}" '
        f'role="img" aria-label="{_esc(chart.title)}" font-size="11" font-family="system-ui,sans-serif">'
    ]
    for i in range(5):  # grid and y labels
        v = top * i / 4
        y = pad + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{left}" x2="{width - pad}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e7ec"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#52606d">{_esc(display(v, fmt))}</text>'
        )
    label_every = max(1, n // 24)
    for j, r in enumerate(rows):
        if j % label_every == 0:
            x = left + step * (j + 0.5)
            label = display(
                r.get(chart.category),
                keys[chart.category].fmt if chart.category in keys else Fmt.TEXT,
            )
            parts.append(
                f'<text x="{x:.1f}" y="{pad + plot_h + 16}" text-anchor="middle" fill="#333">{_esc(label[:14])}</text>'
            )
    if chart.kind == "line":
        for k, vs in enumerate(values):
            pts = " ".join(
                f"{left + step * (j + 0.5):.1f},{pad + plot_h - plot_h * v / top:.1f}"
                for j, v in enumerate(vs)
            )
            color = _PALETTE[k % len(_PALETTE)]
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="2.5" points="{pts}"/>'
            )
            for j, v in enumerate(vs):
                parts.append(
                    f'<circle cx="{left + step * (j + 0.5):.1f}" cy="{pad + plot_h - plot_h * v / top:.1f}" r="3" fill="{color}"/>'
                )
    else:
        bar_w = step * 0.8 / len(values)
        for k, vs in enumerate(values):
            color = _PALETTE[k % len(_PALETTE)]
            for j, v in enumerate(vs):
                h = plot_h * v / top
                x = left + step * j + step * 0.1 + bar_w * k
                parts.append(
                    f'<rect x="{x:.1f}" y="{pad + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{color}">'
                    f"<title>{_esc(display(v, fmt))}</title></rect>"
                )
    if chart.target is not None:
        y = pad + plot_h - plot_h * chart.target / top
        parts.append(
            f'<line x1="{left}" x2="{width - pad}" y1="{y:.1f}" y2="{y:.1f}" stroke="#c62828" stroke-dasharray="6 4" stroke-width="1.5"/>'
        )
        parts.append(
            f'<text x="{width - pad}" y="{y - 4:.1f}" text-anchor="end" fill="#c62828">target {_esc(display(chart.target, fmt))}</text>'
        )
    for k, s in enumerate(series):  # legend
        x = left + k * 190
        parts.append(
            f'<rect x="{x}" y="{height + 6}" width="12" height="12" fill="{_PALETTE[k % len(_PALETTE)]}"/>'
            f'<text x="{x + 17}" y="{height + 16}">{_esc(keys[s].title)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _html_table(table: Table) -> str:
    out = [
        f'<section id="{_esc(table.key)}"><h2>{_esc(table.title)} <small>({_esc(table.clause)})</small></h2>'
    ]
    if table.note:
        out.append(f"<p>{_esc(table.note)}</p>")
    if not table.rows:
        out.append('<p class="empty">None in this period.</p></section>')
        return "".join(out)
    out.append("<table><thead><tr>")
    out += [f"<th>{_esc(c.title)}</th>" for c in table.columns]
    out.append("</tr></thead><tbody>")
    for row, css in [
        *((r, "") for r in table.rows),
        *([(table.total, "total")] if table.total else []),
    ]:
        out.append(f'<tr class="{css}">' if css else "<tr>")
        for c in table.columns:
            value = row.get(c.key)
            cls = ""
            if c.fmt is Fmt.PASS and value is not None:
                cls = "ok" if value else "no"
            elif c.fmt not in (Fmt.TEXT, Fmt.DATE, Fmt.DATETIME):
                cls = "n"
            out.append(
                f'<td class="{cls}">{_esc(display(value, c.fmt))}</td>'
                if cls
                else f"<td>{_esc(display(value, c.fmt))}</td>"
            )
        out.append("</tr>")
    out.append("</tbody></table></section>")
    return "".join(out)


def write_html(report: Report, path: Path) -> Path:
    tables = {t.key: t for t in report.tables}
    cards = []
    for h in report.headlines:
        css = "" if h.passes is None else (" pass" if h.passes else " fail")
        verdict = "" if h.passes is None else f"<em>{'pass' if h.passes else 'FAIL'}</em>"
        cards.append(
            f'<div class="card{css}">{verdict}<b>{_esc(h.label)}</b><span>{_esc(h.value)}</span></div>'
        )
    charts = []
    for chart in report.charts:
        svg = _svg_chart(chart, tables[chart.table]) if chart.table in tables else ""
        if svg:
            charts.append(f"<figure><figcaption>{_esc(chart.title)}</figcaption>{svg}</figure>")
    body = "".join(_html_table(t) for t in report.tables)
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(report.title)} — {_esc(report.organisation_name)} — {_esc(report.period.label)}</title>"
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_CSS}</style></head><body>'
        f"<header><h1>{_esc(report.title)}</h1><p>{_esc(_subtitle(report))}</p></header><main>"
        f'<div class="cards">{"".join(cards)}</div><div class="charts">{"".join(charts)}</div>{body}'
        "</main></body></html>"
    )
    path.write_text(page, encoding="utf-8")
    return path
