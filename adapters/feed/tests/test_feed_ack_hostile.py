"""A hostile consumer acknowledgement: a time the XSD allows but no datetime holds (24:00,
year 10000, 9999-12-31 at -14:00) or a sequence number too long to be one is refused with the
located ``XMLInputError`` that ``receipts()`` promises, never a bare ``ValueError``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from oohcore.channels.testing import sample_message
from oohcore.clock import ManualClock
from oohcore_feed import FeedChannel, XMLInputError


@pytest.fixture
def feed(tmp_path: Path, clock: ManualClock) -> Iterator[FeedChannel]:
    channel = FeedChannel(directory=tmp_path / "feed", clock=clock, fsync=False)
    base = sample_message("daytime", key="k0", channel="feed")
    channel.send(
        replace(
            base,
            fields={
                **base.fields,
                "service_option": "housing-repairs",
                "service_option_name": "Housing repairs",
            },
        )
    )
    yield channel
    channel.close()


def _ack(at: str, through: str = "1", rejected: str = "") -> bytes:
    return (
        f'<acknowledgement xmlns="urn:oohcore:feed-ack:1" organisation="example-borough" '
        f'through="{through}" at="{at}">{rejected}</acknowledgement>'
    ).encode()


@pytest.mark.parametrize(
    "at",
    [
        "2026-12-02T24:00:00Z",
        "10000-01-01T00:00:00Z",
        "9999-12-31T23:59:59-14:00",
        "2026-12-02T03:20:00",
    ],
)
def test_an_impossible_time_is_a_located_xml_input_error(feed: FeedChannel, at: str) -> None:
    with pytest.raises(XMLInputError, match=r"^feed acknowledgement:1:1: 'at'"):
        feed.receipts(_ack(at))


def test_a_sequence_too_long_to_be_one_is_a_located_xml_input_error(feed: FeedChannel) -> None:
    with pytest.raises(XMLInputError, match="'through' is not a document number"):
        feed.receipts(_ack("2026-12-02T03:20:00Z", through="9" * 5000))
    rejected = f'<rejected sequence="{"1" * 5000}">no</rejected>'
    with pytest.raises(XMLInputError, match="'sequence' is not a document number"):
        feed.receipts(_ack("2026-12-02T03:20:00Z", rejected=rejected))
    assert [r.idempotency_key for r in feed.receipts(_ack("2026-12-02T03:20:00Z"))] == ["k0"]
