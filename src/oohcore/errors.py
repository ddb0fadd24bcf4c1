"""Exceptions raised by oohcore, and the located ``Problem`` that user-facing errors carry.

Errors are for people (DESIGN.md, principle 6): every problem in a user's file says where it is
(``path:line:col``), what is wrong, and, where we can tell, what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Problem:
    """One located problem in a user's file (a ruleset, rota, gazetteer …).

    ``line`` and ``col`` are 1-based; 0 means "the whole file" (e.g. an unreadable file).
    """

    path: str
    line: int
    col: int
    message: str
    code: str = "error"
    severity: str = "error"  # "error" or "warning" (a warning never stops a load)

    def __str__(self) -> str:
        tag = "warning: " if self.severity == "warning" else ""
        return f"{self.path}:{self.line}:{self.col}: {tag}{self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
        }


class OohcoreError(Exception):
    """Base class of every exception oohcore raises on purpose."""


class RulesetError(OohcoreError):
    """A ruleset (organisation, service option or catalogue file) is not valid.

    ``problems`` lists every problem found, each with its file, line and column; nothing was
    loaded.
    """

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.path, p.line, p.col, p.message))
        lines = "\n".join(str(p) for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in the ruleset:\n{lines}")

    @classmethod
    def single(cls, path: str | Path, line: int, col: int, message: str, code: str) -> RulesetError:
        return cls([Problem(str(path), line, col, message, code)])
