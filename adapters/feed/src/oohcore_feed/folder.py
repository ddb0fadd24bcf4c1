"""The feed folder: numbered documents written atomically, once per idempotency key.

Layout of a feed folder (one per organisation)::

    000000000001.xml        one service request per document, numbered from 1 with no gaps
    000000000002.xml.p7m    … encrypted as a whole file (S/MIME, DER) when the feed is encrypted
    .index                  one line per document: sequence, file name, idempotency key
    .lock                   the lock writers take (POSIX ``flock``), so processes can share it

A **consumer** remembers the last sequence it has read (its *cursor*) and asks for what comes
after it with :func:`read_feed`; it can stop at any moment and resume from its cursor. Files are
published by ``rename`` in sequence order while the writer holds the lock, so a consumer that
sees document *n* sees every document before it, and never a half-written one (the temporary
files start with a dot).

How a document is written (:meth:`FeedFolder.append`), under the lock: the document goes to a
temporary file, which is ``fsync``-ed; then the index line is appended and ``fsync``-ed; then the
file is renamed into place and the folder ``fsync``-ed. A crash before the index line leaves an
orphan temporary file (removed on the next open; the message was not reported sent, so it is
sent again); a crash after it leaves a complete temporary file that the next writer renames
into place (the message is then found by its key and not written twice).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from oohcore.channels import ChannelError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["FeedEntry", "FeedFolder", "FeedPage", "read_feed"]

_NAME = re.compile(r"^([0-9]{12})\.xml(\.p7m)?$")
_INDEX = ".index"
_LOCK = ".lock"
_TMP = ".tmp-"


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One published document of a feed folder."""

    sequence: int
    path: Path

    @property
    def encrypted(self) -> bool:
        return self.path.name.endswith(".p7m")

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()


@dataclass(frozen=True, slots=True)
class FeedPage:
    """What :func:`read_feed` found after a cursor; pass ``cursor`` back to resume."""

    entries: tuple[FeedEntry, ...]
    cursor: int
    more: bool = False  # the page was cut at its limit: ask again with ``cursor``


def read_feed(directory: str | os.PathLike[str], *, after: int = 0, limit: int = 100) -> FeedPage:
    """The documents of the feed folder ``directory`` with a sequence above ``after`` (the
    consumer's cursor; 0 for the start), oldest first, at most ``limit`` of them."""
    if after < 0 or limit < 1:
        raise ValueError("read_feed: after must be 0 or more and limit at least 1")
    folder = Path(directory)
    try:
        names = os.listdir(folder)
    except OSError as exc:
        raise ChannelError(f"{folder}: cannot read the feed folder: {exc.strerror}") from None
    found: list[FeedEntry] = []
    for name in names:
        m = _NAME.match(name)
        if m and int(m.group(1)) > after:
            found.append(FeedEntry(int(m.group(1)), folder / name))
    found.sort(key=lambda e: e.sequence)
    page = tuple(found[:limit])
    return FeedPage(page, page[-1].sequence if page else after, more=len(found) > limit)


class FeedFolder:
    """Writes numbered documents into a folder, once per idempotency key (see the module)."""

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._lock = threading.Lock()
        self._by_key: dict[str, int] = {}
        self._by_seq: dict[int, tuple[str, str]] = {}  # sequence -> (file name, key)
        self._last = 0
        self._offset = 0  # bytes of the index read so far
        self._last_line = 0  # where the index's last line starts
        self._lock_fd = os.open(self.directory / _LOCK, os.O_RDWR | os.O_CREAT, 0o640)
        self._index_fd = -1
        try:
            self._index_fd = os.open(
                self.directory / _INDEX, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640
            )
            with self._locked():
                self._catch_up()
                self._remove_orphans()
        except BaseException:
            self.close()
            raise

    @property
    def last_sequence(self) -> int:
        return self._last

    def sequence_of(self, key: str) -> int | None:
        """The sequence of the document written for ``key`` (as far as this process knows)."""
        return self._by_key.get(key)

    def key_of(self, sequence: int) -> str | None:
        """The idempotency key of document ``sequence``."""
        with self._lock, self._locked():
            self._catch_up()
        entry = self._by_seq.get(sequence)
        return entry[1] if entry else None

    def append(self, key: str, suffix: str, render: Callable[[int], bytes]) -> tuple[int, bool]:
        """Write ``render(sequence)`` as the next document unless ``key`` has one already.

        Returns ``(sequence, duplicate)``. ``suffix`` is the file's ending (``.xml`` or
        ``.xml.p7m``). Nothing is written when ``render`` raises.
        """
        if suffix not in (".xml", ".xml.p7m"):
            raise ValueError(f"unknown feed document suffix {suffix!r}")
        with self._lock, self._locked():
            if self._index_fd < 0:
                raise ChannelError(f"{self.directory}: the feed folder is closed")
            self._catch_up()
            existing = self._by_key.get(key)
            if existing is not None:
                return existing, True
            sequence = self._last + 1
            data = render(sequence)
            name = f"{sequence:012d}{suffix}"
            tmp = self.directory / f"{_TMP}{name}"
            self._write_file(tmp, data)
            line = f"{sequence}\t{name}\t{json.dumps(key)}\n".encode()
            written = os.write(self._index_fd, line)
            if written != len(line):  # pragma: no cover - disk full and similar
                raise ChannelError(f"{self.directory}: short write to the feed index")
            if self._fsync:
                os.fsync(self._index_fd)
            self._remember(sequence, name, key, self._offset)
            self._offset += written
            os.replace(tmp, self.directory / name)
            self._sync_dir()
            return sequence, False

    def close(self) -> None:
        with self._lock:
            for attr in ("_index_fd", "_lock_fd"):
                fd = getattr(self, attr)
                if fd >= 0:
                    os.close(fd)
                    setattr(self, attr, -1)

    # -- internals -------------------------------------------------------------------------

    def _locked(self) -> _FileLock:
        return _FileLock(self._lock_fd)

    def _remember(self, sequence: int, name: str, key: str, start: int) -> None:
        self._by_key.setdefault(key, sequence)
        self._by_seq[sequence] = (name, key)
        self._last = sequence
        self._last_line = start

    def _catch_up(self) -> None:
        size = os.fstat(self._index_fd).st_size
        if size > self._offset:
            data = os.pread(self._index_fd, size - self._offset, self._offset)
            end = data.rfind(b"\n") + 1
            pos = 0
            for raw in data[:end].splitlines(keepends=True):
                start = self._offset + pos
                pos += len(raw)
                try:
                    seq_text, name, key_json = raw.decode().rstrip("\n").split("\t")
                    sequence, key = int(seq_text), json.loads(key_json)
                except (ValueError, UnicodeDecodeError) as exc:
                    raise ChannelError(
                        f"{self.directory / _INDEX}: byte {start}: not a feed index line "
                        f"({exc}); restore the index from a backup or move the folder aside"
                    ) from None
                if sequence != self._last + 1 or not _NAME.match(name):
                    raise ChannelError(
                        f"{self.directory / _INDEX}: byte {start}: expected document "
                        f"{self._last + 1}, found {sequence} ({name}); the index was edited: "
                        "restore it from a backup or move the folder aside"
                    )
                self._remember(sequence, name, str(key), start)
            self._offset += end
            if end != len(data):
                # A torn last line, seen while we hold the lock: its writer died before the
                # document was published. Cut it off.
                os.ftruncate(self._index_fd, self._offset)
        self._finish_last()

    def _finish_last(self) -> None:
        """Publish the last indexed document if its writer died between index and rename."""
        if not self._last:
            return
        name, _key = self._by_seq[self._last]
        final = self.directory / name
        if final.exists():
            return
        tmp = self.directory / f"{_TMP}{name}"
        if tmp.exists():
            os.replace(tmp, final)
            self._sync_dir()
            return
        raise ChannelError(
            f"{final}: the index lists this document but neither it nor its temporary file "
            "exists; it was removed by hand: restore it from a backup"
        )

    def _remove_orphans(self) -> None:
        for name in os.listdir(self.directory):
            if name.startswith(_TMP):
                os.unlink(self.directory / name)

    def _write_file(self, path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            if self._fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def _sync_dir(self) -> None:
        if not self._fsync:
            return
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _FileLock:
    def __init__(self, fd: int) -> None:
        self._fd = fd

    def __enter__(self) -> None:
        if fcntl is not None and self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        if fcntl is not None and self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
