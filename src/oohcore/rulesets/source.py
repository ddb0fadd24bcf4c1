"""Reading YAML while remembering where every value came from.

PyYAML's composer gives nodes with start marks; we build plain Python data from them ourselves
(so duplicate keys are caught instead of silently overwritten) and keep a map from each value's
path (a tuple of keys and indexes) to its line and column. Every later check — JSON Schema,
pydantic, the condition compiler, cross-references — reports through that map, so a council
officer is always pointed at ``file:line:col``.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from oohcore.errors import Problem, RulesetError

# the C composer is faster and gives identical marks
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

PathKey = tuple[str | int, ...]


_ESCAPE_LENGTH = {"x": 4, "u": 6, "U": 10}  # \xHH, \uHHHH, \UHHHHHHHH; other escapes are 2
_SPACE = " \t\r\n"


@dataclass(frozen=True, slots=True)
class Span:
    """Where a text value is written when it is not a plain copy of one line: it has escapes
    (``\"``, ``''``) or runs over several lines (``>-`` and ``|`` blocks, long plain or quoted
    text). :meth:`locate` finds the line and column of a character of the value, so a problem
    inside a long condition or template is reported where it is written."""

    text: str  # the whole file
    start: int  # index of the scalar in ``text`` (its quote or block indicator)
    stop: int
    line: int  # 1-based line and column of ``start``
    col: int
    style: str  # '"', "'", '|', '>' or '' (plain)
    value: str

    def locate(self, offset: int) -> tuple[int, int] | None:
        """(line, col) of ``value[offset]`` (of the end, for ``len(value)``), or None when the
        written form cannot be followed."""
        text, i, style = self.text, self.start, self.style
        if style in ("|", ">"):
            i = text.find("\n", i, self.stop) + 1  # the text starts below the indicator line
            if i == 0:
                return None
        elif style:
            i += 1  # the opening quote
        for n, ch in enumerate(self.value[: max(offset, 0) + 1]):
            while True:
                if i >= self.stop:
                    return None
                c = text[i]
                if style == '"' and c == "\\":
                    if text[i + 1 : i + 2] in ("\n", "\r"):
                        i += 2  # an escaped line break stands for nothing
                        continue
                    found, i = i, i + _ESCAPE_LENGTH.get(text[i + 1 : i + 2], 2)
                elif c == ch or (c in _SPACE and ch in _SPACE):
                    found, i = i, i + 1
                    if style == "'" and c == "'":
                        i += 1  # '' stands for '
                elif c in _SPACE:
                    i += 1  # indentation, or a line break folded into a space
                    continue
                else:
                    return None
                break
            if n == offset:
                return self._line_col(found)
        return self._line_col(min(i, self.stop - 1)) if offset >= len(self.value) else None

    def _line_col(self, index: int) -> tuple[int, int]:
        breaks = self.text.count("\n", self.start, index)
        if not breaks:
            return self.line, self.col + index - self.start
        return self.line + breaks, index - self.text.rfind("\n", self.start, index)


@dataclass(frozen=True, slots=True)
class Position:
    file: str
    line: int  # 1-based
    col: int  # 1-based
    # Where the characters of a one-line string value begin (after an opening quote), so that a
    # problem found at offset N inside a condition can be reported at col + N. None otherwise.
    text_col: int | None = None
    # For a text value with escapes or over several lines, where each character is written.
    span: Span | None = None


@dataclass
class Source:
    """A parsed YAML document with a position for every value and every mapping key."""

    path: str
    data: Any
    values: dict[PathKey, Position] = field(default_factory=dict)
    keys: dict[PathKey, Position] = field(default_factory=dict)

    def where(self, path: Sequence[str | int]) -> Position:
        """The position of the value at ``path``, or of its nearest located ancestor."""
        p = tuple(path)
        while p:
            if p in self.values:
                return self.values[p]
            p = p[:-1]
        return self.values.get((), Position(self.path, 1, 1))

    def key_where(self, path: Sequence[str | int]) -> Position:
        """The position of the key that ends ``path`` (falls back to the value)."""
        p = tuple(path)
        return self.keys.get(p) or self.where(p)

    def problem(
        self,
        path: Sequence[str | int],
        message: str,
        code: str,
        *,
        offset: int | None = None,
        at_key: bool = False,
    ) -> Problem:
        pos = self.key_where(path) if at_key else self.where(path)
        line, col = pos.line, pos.col
        found = pos.span.locate(offset) if offset is not None and pos.span else None
        if found is not None:
            line, col = found
        elif offset is not None and pos.text_col is not None and pos.span is None:
            col = pos.text_col + offset
        return Problem(pos.file, line, col, message, code)


def _mark(file: str, node: yaml.Node) -> Position:
    m = node.start_mark
    return Position(file, m.line + 1, m.column + 1)


def _text_col(node: yaml.ScalarNode) -> int | None:
    if node.start_mark.line != node.end_mark.line:
        return None
    if node.style in ('"', "'"):
        return node.start_mark.column + 2
    if node.style in (None, ""):
        return node.start_mark.column + 1
    return None


def _span(node: yaml.ScalarNode, text: str) -> Span | None:
    """A :class:`Span` for a text value that is not a plain copy of one line, else None."""
    start, end = node.start_mark, node.end_mark
    style = node.style or ""
    quotes = 2 if style in ('"', "'") else 0
    if start.line == end.line and end.index - start.index == len(node.value) + quotes:
        return None  # text_col + offset is exact
    return Span(text, start.index, end.index, start.line + 1, start.column + 1, style, node.value)


_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
}

_NUMBER_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_CONTAINER_TAGS = {"tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"}


MAX_NESTING = 50  # lists and mappings within each other; a ruleset needs about 10
MAX_VALUES = 100_000  # values in a file, counting each use of a YAML alias (*name) afresh
MAX_FILE_BYTES = 1_000_000  # a ruleset file; the catalogue's largest is about 20 kB
MAX_PATH_CHARS = 1_024  # a path written in a ruleset ('extends:')
MAX_NUMBER = 1e15  # any number written in a ruleset (a UPRN has 12 digits)


class _TooLarge(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _check_nesting(text: str, path: str) -> None:
    """libyaml composes nested lists and mappings by C recursion, which crashes the process
    on a few thousand '[' (and our builder recurses too): measure the depth from the event
    stream, which is read without recursion, before composing; and count the values, so
    that no more than ``MAX_VALUES`` nodes are ever composed."""
    loader = _Loader(text)
    try:
        depth = 0
        values = 0
        while loader.check_event():
            event = loader.get_event()
            if isinstance(
                event, (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)
            ):
                # composing a node per value costs memory: count them before (aliases, which
                # repeat what is composed already, are counted as they are built)
                values += 1
                if values > MAX_VALUES:
                    m = event.start_mark
                    raise _TooLarge(
                        Problem(
                            path,
                            m.line + 1 if m else 1,
                            m.column + 1 if m else 1,
                            f"the file holds more than {MAX_VALUES:,} values",
                            "yaml-too-large",
                        )
                    )
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > MAX_NESTING:
                    m = event.start_mark
                    raise RulesetError.single(
                        path,
                        m.line + 1 if m else 1,
                        m.column + 1 if m else 1,
                        f"lists and mappings are nested more than {MAX_NESTING} levels deep",
                        "yaml-too-deep",
                    )
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
    finally:
        loader.dispose()


class _Builder:
    def __init__(self, source: Source, loader: yaml.SafeLoader, text: str) -> None:
        self.source = source
        self.loader = loader
        self.text = text
        self.problems: list[Problem] = []
        self.count = 0
        self.depth = 0  # lists and mappings being built, aliases followed (a chain of them)
        self.open: set[int] = set()  # lists and mappings being built (to catch alias loops)

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        pos = _mark(self.source.path, node)
        self.count += 1
        if self.count > MAX_VALUES:
            raise _TooLarge(
                Problem(
                    pos.file,
                    pos.line,
                    pos.col,
                    f"the file holds more than {MAX_VALUES:,} values; is a YAML alias (*name) "
                    "repeating a large part of it?",
                    "yaml-too-large",
                )
            )
        if isinstance(node, yaml.ScalarNode):
            self.source.values[path] = Position(
                pos.file, pos.line, pos.col, _text_col(node), _span(node, self.text)
            )
            if node.tag == "tag:yaml.org,2002:timestamp":
                # Dates and times stay text: the schema says what shape they must have, and
                # "2026-12-24" must not turn into a datetime.date behind the author's back.
                return node.value
            if node.tag not in _SCALAR_TAGS:
                self.problems.append(
                    Problem(
                        self.source.path,
                        pos.line,
                        pos.col,
                        f"YAML tag {_excerpt(node.tag)} is not allowed in a ruleset; write a "
                        "plain value",
                        "yaml-tag",
                    )
                )
                return node.value
            if node.tag in _NUMBER_TAGS and len(node.value) > 40:
                value: Any = math.inf  # reported just below, never converted
            else:
                try:
                    value = self.loader.construct_object(node, deep=True)
                except (ValueError, yaml.YAMLError):
                    self.problems.append(
                        Problem(
                            pos.file,
                            pos.line,
                            pos.col,
                            f"{_excerpt(node.value)} cannot be read as a {node.tag.rsplit(':', 1)[-1]}; "
                            "write it in quotes as text",
                            "yaml-value",
                        )
                    )
                    return None
            if isinstance(value, float) and math.isnan(value):
                # .nan compares unequal to everything: a rule reading it could never hold
                self.problems.append(
                    Problem(
                        pos.file,
                        pos.line,
                        pos.col,
                        f"{_excerpt(node.value)} is not a number (YAML's NaN); write a number, "
                        "or text in quotes",
                        "not-a-number",
                    )
                )
                return None
            if (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and (not math.isfinite(value) or abs(value) > MAX_NUMBER)
            ):
                # 1.0e999 is read as infinity: it would compile to a bare name 'inf'
                self.problems.append(
                    Problem(
                        pos.file,
                        pos.line,
                        pos.col,
                        f"the number {_excerpt(node.value)} is too large (at most "
                        f"{MAX_NUMBER:.0e} either way); write a smaller one, or text in "
                        "quotes",
                        "number-too-large",
                    )
                )
                return None
            return value
        self.source.values[path] = pos
        if node.tag not in _CONTAINER_TAGS:
            # !!python/object/apply:… [args] is a tagged list: refused like a tagged scalar
            self.problems.append(
                Problem(
                    pos.file,
                    pos.line,
                    pos.col,
                    f"YAML tag {_excerpt(node.tag)} is not allowed in a ruleset; write a plain "
                    "list or mapping",
                    "yaml-tag",
                )
            )
            return None
        if id(node) in self.open:
            self.problems.append(
                Problem(
                    pos.file,
                    pos.line,
                    pos.col,
                    "a YAML alias (*name) inside this list or mapping refers back to it, so it "
                    "never ends; write the values out",
                    "yaml-alias-loop",
                )
            )
            return None
        if self.depth >= MAX_NESTING:
            # a chain of aliases (a: &a [x], b: &b [*a], c: [*b] …) nests without '[' written
            raise _TooLarge(
                Problem(
                    pos.file,
                    pos.line,
                    pos.col,
                    f"lists and mappings are nested more than {MAX_NESTING} levels deep "
                    "(counting what YAML aliases (*name) bring in)",
                    "yaml-too-deep",
                )
            )
        self.open.add(id(node))
        self.depth += 1
        try:
            return self._build_container(node, path)
        finally:
            self.depth -= 1
            self.open.discard(id(node))

    def _build_container(self, node: yaml.Node, path: PathKey) -> Any:
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                kpos = _mark(self.source.path, key_node)
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problems.append(
                        Problem(
                            self.source.path,
                            kpos.line,
                            kpos.col,
                            "a key must be plain text",
                            "yaml-key",
                        )
                    )
                    continue
                key = str(key_node.value)
                if key == "<<":
                    self.problems.append(
                        Problem(
                            self.source.path,
                            kpos.line,
                            kpos.col,
                            "YAML merge keys ('<<') are not supported; use 'extends:' instead",
                            "yaml-merge",
                        )
                    )
                    continue
                if key in out:
                    first = self.source.keys[(*path, key)]
                    self.problems.append(
                        Problem(
                            self.source.path,
                            kpos.line,
                            kpos.col,
                            f"duplicate key {key!r} (first given at line {first.line}); "
                            "remove one of them",
                            "duplicate-key",
                        )
                    )
                    continue
                self.source.keys[(*path, key)] = kpos
                out[key] = self.build(value_node, (*path, key))
            return out
        raise AssertionError(f"unexpected YAML node {node!r}")  # pragma: no cover


def parse_yaml(text: str, path: str) -> Source:
    """Parse one YAML document into a :class:`Source`; raise :class:`RulesetError` if malformed."""
    source = Source(path=path, data=None)
    loader = _Loader(text)
    try:
        _check_nesting(text, path)
        node = loader.get_single_node()
        if node is None:
            raise RulesetError.single(path, 1, 1, "the file is empty", "empty-file")
        builder = _Builder(source, loader, text)
        source.data = builder.build(node, ())
    except _TooLarge as exc:
        raise RulesetError([exc.problem]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        col = mark.column + 1 if mark else 1
        what = exc.problem or exc.context or "malformed YAML"
        ctx = exc.context_mark
        if (
            exc.problem
            and exc.context
            and ctx is not None
            and ctx is not mark
            and "plain scalar" not in exc.context
        ):
            # e.g. "did not find expected ',' or ']'" is found a line after the '[' left open
            what += f" ({exc.context} at line {ctx.line + 1}, column {ctx.column + 1})"
        raise RulesetError.single(
            path, line, col, f"YAML syntax error: {what}", "yaml-syntax"
        ) from None
    except yaml.reader.ReaderError as exc:
        # a control character: PyYAML gives only its offset in the text
        line, col = _line_col(text, exc.position)
        raise RulesetError.single(
            path,
            line,
            col,
            f"the character {chr(exc.character)!r} (U+{exc.character:04X}) is not allowed in "
            "YAML; remove it",
            "yaml-character",
        ) from None
    except yaml.YAMLError as exc:
        raise RulesetError.single(
            path, 1, 1, f"YAML error: {_excerpt(str(exc), 200)}", "yaml-syntax"
        ) from None
    finally:
        loader.dispose()
    if builder.problems:
        raise RulesetError(builder.problems)
    return source


def _line_col(text: str, index: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


def _excerpt(text: str, limit: int = 60) -> str:
    """``text`` quoted, cut short: an error never prints back much of a file that may not be a
    ruleset at all."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def path_problem(written: str) -> str | None:
    """Why a path written in a ruleset cannot be used, or None."""
    if "\0" in written:
        return "the path holds a NUL character"
    if len(written) > MAX_PATH_CHARS:
        return f"the path is longer than {MAX_PATH_CHARS:,} characters"
    if any(len(part.encode("utf-8", "replace")) > 255 for part in written.split("/")):
        return "a part of the path is longer than 255 bytes"
    return None


def real_path(path: Path) -> Path | None:
    """``path`` with every link followed, or None when it cannot be (missing, a loop of
    links, too long …)."""
    try:
        return path.resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None


def read_yaml(path: Path, *, within: Sequence[Path] = ()) -> Source:
    """Parse the ruleset file at ``path``. Only a regular file of at most ``MAX_FILE_BYTES`` is
    read (never a device, a FIFO or a folder), and with ``within``, only one inside one of
    those folders once links are followed."""

    def refuse(message: str, code: str = "io") -> RulesetError:
        return RulesetError.single(path, 0, 0, message, code)

    real = real_path(path)
    if real is None:
        reason = "it does not exist, or is a link that leads nowhere (or round in a loop)"
        raise refuse(f"cannot read the file: {reason}")
    if within and not any(real.is_relative_to(root) for root in within):
        raise refuse(
            "the file is a link to a file outside the ruleset folder and the catalogue; "
            "links out of them are refused",
            "outside-ruleset",
        )
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise refuse(f"cannot read the file: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise refuse("not a regular file (a device, a FIFO or a folder is never read)")
        if info.st_size > MAX_FILE_BYTES:
            raise refuse(f"the file is larger than {MAX_FILE_BYTES:,} bytes", "file-too-large")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_FILE_BYTES:
            raise refuse(f"the file is larger than {MAX_FILE_BYTES:,} bytes", "file-too-large")
        data = b"".join(chunks)
    except OSError as exc:
        raise refuse(f"cannot read the file: {exc.strerror}") from None
    finally:
        os.close(fd)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # point at the first byte that is not UTF-8, not at the top of the file
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        col = len(data[line_start : exc.start].decode("utf-8", "replace")) + 1
        raise RulesetError.single(
            path,
            line,
            col,
            f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x}: {exc.reason}); "
            "save it as UTF-8",
            "encoding",
        ) from None
    # a ruleset's files are named by their real place (one file reached by two links is one
    # file); other callers' (a rota, a targets file) as they were given
    return parse_yaml(text, str(real) if within else str(path))


def walk(data: Any, path: PathKey = ()) -> Iterator[tuple[PathKey, Any]]:
    """Every (path, value) pair in a plain data tree, parents before children."""
    yield path, data
    if isinstance(data, dict):
        for k, v in data.items():
            yield from walk(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from walk(v, (*path, i))
