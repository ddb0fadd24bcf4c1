"""The page ledger on its own: sent keys, in-flight attempts, the sliding window, a file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from oohcore.channels import ChannelError
from oohcore.clock import ManualClock
from oohcore_pager import PageLedger, PageRateLimit, PagerConfigError
from oohcore_pager.ledger import Duplicate, Outcome, Proceed, Wait

LEASE = timedelta(seconds=30)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 1, 10, 3, 0, tzinfo=UTC))


def test_an_attempt_in_flight_holds_back_a_second_one_until_its_lease_ends(
    clock: ManualClock,
) -> None:
    ledger = PageLedger(None, clock=clock, rate_limit=None)
    assert ledger.begin("snpp", "p1", "k", lease=LEASE) == Proceed()
    held = ledger.begin("snpp", "p1", "k", lease=LEASE)
    assert isinstance(held, Wait) and held.after == LEASE
    clock.advance(LEASE)
    assert ledger.begin("snpp", "p1", "k", lease=LEASE) == Proceed()  # the first one died
    ledger.finish("k", Outcome.SENT, "ref-1")
    assert ledger.begin("snpp", "p1", "k", lease=LEASE) == Duplicate("ref-1")
    ledger.close()
    ledger.close()
    with pytest.raises(ChannelError, match="closed"):
        ledger.begin("snpp", "p1", "k2", lease=LEASE)


def test_a_failed_attempt_gives_its_slot_back_and_an_unknown_one_keeps_it(
    clock: ManualClock,
) -> None:
    ledger = PageLedger(None, clock=clock, rate_limit=PageRateLimit(pages=1))
    assert ledger.begin("snpp", "p1", "a", lease=LEASE) == Proceed()
    ledger.finish("a", Outcome.FAILED)
    assert ledger.begin("snpp", "p1", "b", lease=LEASE) == Proceed()
    ledger.finish("b", Outcome.UNKNOWN)
    held = ledger.begin("snpp", "p1", "c", lease=LEASE)
    assert isinstance(held, Wait) and held.after == timedelta(minutes=1)
    assert ledger.begin("snpp", "p1", "b", lease=LEASE) == Proceed()  # b itself may try again
    ledger.close()


def test_the_file_is_shared_by_two_ledgers(clock: ManualClock, tmp_path: Path) -> None:
    path = tmp_path / "state" / "ledger.sqlite"
    one = PageLedger(path, clock=clock, rate_limit=PageRateLimit(pages=1))
    two = PageLedger(path, clock=clock, rate_limit=PageRateLimit(pages=1))
    assert one.begin("snpp", "p1", "a", lease=LEASE) == Proceed()
    one.finish("a", Outcome.SENT)
    assert isinstance(two.begin("snpp", "p1", "b", lease=LEASE), Wait)
    assert two.begin("snpp", "p1", "a", lease=LEASE) == Duplicate(None)
    one.close()
    two.close()


def test_an_unwritable_state_path_says_what_to_do(clock: ManualClock, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PagerConfigError, match="state_path"):
        PageLedger(blocker / "ledger.sqlite", clock=clock, rate_limit=None)
