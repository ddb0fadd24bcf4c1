"""The engine feeds every service request of the options an organisation chose (7.8, 5.2.4's
'pull' arrangement) through the real feed channel: each closed call becomes one document with
every field the call holds, the UPRN element always present (7.11), valid against the shipped
XSD by xmllint's own check; a call of an option not chosen is not fed."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from oohcore.channels.local import MemoryChannel
from oohcore.clock import ManualClock
from oohcore.engine import Engine
from oohcore_feed import FeedChannel, parse_xml, read_feed, schema_path

FIXTURES = Path(__file__).parents[3] / "tests" / "fixtures" / "engine"
N = "{urn:oohcore:feed:1}"


def _org_with_feed(tmp_path: Path, options: str) -> Path:
    folder = tmp_path / "rulesets"
    shutil.copytree(FIXTURES, folder)
    org = folder / "org-a" / "organisation.yaml"
    org.write_text(org.read_text(encoding="utf-8") + f"feed:\n  service_options: {options}\n")
    return folder


def test_each_closed_call_of_a_fed_option_is_one_valid_document(
    tmp_path: Path, xmllint: Callable[[str, Path], subprocess.CompletedProcess[bytes]]
) -> None:
    clock = ManualClock(datetime(2026, 11, 20, 22, 0, tzinfo=UTC))
    feed = FeedChannel(directory=tmp_path / "feed", clock=clock, fsync=False)
    other = MemoryChannel()
    channels = {**dict.fromkeys(("sms", "email", "pager", "phone", "crm"), other), "feed": feed}
    engine = Engine.open(
        _org_with_feed(tmp_path, "[repairs]"),
        f"sqlite:///{tmp_path / 'ooh.sqlite'}",
        clock=clock,
        channels=channels,
    )
    try:
        desk = engine.organisation("org-a")
        fed = engine.offer("0100 000 0002", caller_number="07700900123")
        desk.answer(fed.id, handler="amy")
        desk.capture(
            fed.id,
            {"caller_name": "Ann Lee", "address": "12a High St.", "repair": "gas"},
        )
        assert desk.next_step(fed.id).kind == "transfer"
        desk.complete(fed.id)
        reference = desk.close(fed.id).reference
        noise = engine.offer("0100 000 0003", caller_number="07700900124")  # not fed
        desk.answer(noise.id, handler="amy")
        engine.tick()
    finally:
        engine.close()
        feed.close()
    entries = read_feed(tmp_path / "feed").entries
    assert len(entries) == 1
    document = entries[0].path
    done = xmllint(schema_path(), document)
    assert done.returncode == 0, done.stderr.decode()
    root = parse_xml(document.read_bytes(), source=str(document))
    [request] = root.iter(N + "serviceRequest")
    assert request.findtext(N + "reference") == reference
    assert request.find(N + "serviceOption").get("id") == "repairs"  # type: ignore[union-attr]
    uprn = request.findtext(N + "uprn") or ""
    assert uprn.isascii() and uprn.isdigit()  # the gazetteer's UPRN of 12a High St. (7.11)
    text = document.read_text(encoding="utf-8")
    for value in ("Ann Lee", "12a High St.", "gas", "received_at", "amy", "transfer"):
        assert value in text, value
