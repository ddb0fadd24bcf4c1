"""LocalChannel survives log rotation by copy-and-truncate (issue 7, defect 13).

``logrotate``'s ``copytruncate`` copies the file aside and truncates it to zero while the channel
keeps its descriptor open. Before the fix the channel "repaired" the now-short file by extending it
back to its old length with NUL bytes, and on the next start refused to open the file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from oohcore.channels import DeliveryStatus
from oohcore.channels.local import LocalChannel
from oohcore.channels.testing import sample_message


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_copy_and_truncate_then_send_appends_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    ch = LocalChannel(path, fsync=False)
    for n in range(3):
        assert ch.send(sample_message("07700900123", key=f"k{n}")).status is (DeliveryStatus.SENT)
    shutil.copyfile(path, tmp_path / "out.jsonl.1")  # logrotate copytruncate
    with path.open("r+b") as f:
        f.truncate(0)
    result = ch.send(sample_message("07700900123", key="after"))
    assert result.status is DeliveryStatus.SENT
    data = path.read_bytes()
    assert b"\0" not in data
    assert [r["idempotency_key"] for r in _lines(path)] == ["after"]
    ch.close()
    # and a restart opens the rotated file and carries on
    with LocalChannel(path, fsync=False) as again:
        assert "after" in again.keys
        again.send(sample_message("07700900123", key="next"))
    assert [r["idempotency_key"] for r in _lines(path)] == ["after", "next"]


def test_a_message_sent_before_the_rotation_is_still_not_sent_twice(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    with LocalChannel(path, fsync=False) as ch:
        ch.send(sample_message("07700900123", key="k0"))
        path.write_bytes(b"")  # truncated under the open channel
        again = ch.send(sample_message("07700900123", key="k0"))
        assert again.duplicate
    assert path.read_bytes() == b""


def test_a_file_padded_with_nul_bytes_by_an_earlier_version_still_opens(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    with LocalChannel(path, fsync=False) as ch:
        ch.send(sample_message("07700900123", key="k0"))
    good = path.read_bytes()
    path.write_bytes(b"\0" * 500 + good)  # what the old ftruncate left behind
    with LocalChannel(path, fsync=False) as ch:
        assert "k0" in ch.keys
        ch.send(sample_message("07700900123", key="k1"))
    keys = [
        json.loads(line.lstrip(b"\0"))["idempotency_key"] for line in path.read_bytes().splitlines()
    ]
    assert keys == ["k0", "k1"]
