"""docs/compliance.md points at real code and tests (issue 19).

Every file or folder path the matrix cites in backticks exists (code paths under `src/oohcore/`,
`tests/`, the repository root or `adapters/`; in a row naming `adapters/<name>`, a bare file or
`adapters/<name>/x.py` is in that adapter's package), and every test it names exists in its file:
`test_x.py::test_name`, and the continuation form `::test_name`, which names a test of the file
last cited in the same cell. A module moved or a test renamed without the matrix following fails
here, so the matrix stays a map a reader can trust.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MATRIX = ROOT / "docs" / "compliance.md"
# where a cited path may be found, in the order the matrix's preamble gives
ROOTS = (ROOT / "src" / "oohcore", ROOT / "tests", ROOT, ROOT / "adapters")

TICKED = re.compile(r"`([^`]+)`")
PATH = re.compile(r"^[\w.\-/]+(?:\.(?:py|yaml|yml|json|csv|xsd|txt|md|toml)|/)$")
TEST_REF = re.compile(r"(?:(?P<file>[\w./\-]*test_\w+\.py))?::(?P<name>\w+)")
TEST_FILE = re.compile(r"[\w./\-]*test_\w+\.py")


def _rows() -> list[list[str]]:
    rows = []
    for line in MATRIX.read_text(encoding="utf-8").splitlines():
        if (
            line.startswith("|")
            and not line.startswith("| ---")
            and not line.startswith("| clause")
        ):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


ADAPTER = re.compile(r"^adapters/(\w+)")


def _find(cited: str, adapters: tuple[str, ...] = ()) -> Path | None:
    for base in ROOTS:
        candidate = base / cited
        if candidate.exists():
            return candidate
    # in an adapter's row, `adapters/<name>/x.py` and a bare `x.py` are in its package
    named = ADAPTER.match(cited)
    if named:
        adapters, cited = (named[1],), cited[len(named[0]) :].lstrip("/")
    for adapter in adapters:
        matches = sorted(ROOT.glob(f"adapters/{adapter}/src/*/{cited}"))
        if matches:
            return matches[0]
    return None


def _find_test_file(cited: str) -> Path | None:
    found = _find(cited)
    if found is not None:
        return found
    # adapter tests are cited as `<adapter>/tests/test_x.py`, core tests as `test_x.py`
    matches = sorted(ROOT.glob(f"adapters/*/tests/{cited}"))
    return matches[0] if matches else None


@cache
def _names(path: Path) -> frozenset[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return frozenset(
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    )


def test_the_matrix_has_rows() -> None:
    assert len(_rows()) > 50


def test_every_cited_path_exists() -> None:
    missing = []
    for row in _rows():
        for cell in row:
            adapters = tuple(
                dict.fromkeys(m[1] for c in TICKED.findall(cell) if (m := ADAPTER.match(c)))
            )
            for cited in TICKED.findall(cell):
                cited = cited.strip()
                if cited.startswith("../") or not PATH.match(cited) or "::" in cited:
                    continue
                if "/" not in cited and not cited.endswith(".py"):
                    continue  # a dotted name (`message.sms`), not a path
                if _find(cited, adapters) is None and _find_test_file(cited) is None:
                    missing.append(cited)
    assert not missing, "\n".join(missing)


def test_every_cited_test_exists() -> None:
    missing = []
    for row in _rows():
        for cell in row:
            current: str | None = None
            for cited in TICKED.findall(cell):
                if "::" not in cited:
                    if TEST_FILE.fullmatch(cited.strip()):
                        current = cited.strip()
                    continue
                ref = TEST_REF.fullmatch(cited.strip())
                assert ref is not None, f"unreadable test citation {cited!r}"
                if ref["file"]:
                    current = ref["file"]
                assert current is not None, f"{cited!r} continues no test file"
                path = _find_test_file(current)
                if path is None or ref["name"] not in _names(path):
                    missing.append(f"{current}::{ref['name']}")
    assert not missing, "\n".join(missing)
