"""The audit log's records and errors: an event read back, a verification's report and problems,
a chain's head and a pin to check it against.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from oohcore.audit.personal import PAYLOAD_KEY, PersonalData
from oohcore.errors import OohcoreError

__all__ = [
    "GENESIS_HASH",
    "AuditChainError",
    "AuditError",
    "AuditPayloadError",
    "AuditProblem",
    "AuditReport",
    "ChainHead",
    "ChainPin",
    "EventRow",
]


GENESIS_HASH = "0" * 64


class AuditError(OohcoreError):
    """A problem with the audit log."""


class AuditPayloadError(AuditError, TypeError):
    """An event payload cannot be written as canonical JSON."""


class AuditChainError(AuditError):
    """The audit chain failed verification (raised by :meth:`AuditReport.raise_if_broken`)."""

    def __init__(self, report: AuditReport) -> None:
        self.report = report
        super().__init__(str(report))


@dataclass(frozen=True, slots=True)
class EventRow:
    """One event as read back: the chained fields, and its personal data beside the chain.

    ``payload`` is what the chain proves; when the event has personal data, the payload holds
    only its field names and digest (under ``"personal_data"``) and ``personal`` gives the data
    back, or says it was purged (when, by whom, why) or is missing.
    """

    id: int
    organisation_id: str
    seq: int
    call_id: str | None
    kind: str
    payload_json: str
    at: datetime
    prev_hash: str
    hash: str
    personal: PersonalData | None = None

    @property
    def payload(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.payload_json)
        return value

    def payload_with_personal_data(self) -> dict[str, Any]:
        """The payload with the digest reference replaced by the personal data itself (or
        without it, once purged): what the event recorded, for reports and displays."""
        value = self.payload
        value.pop(PAYLOAD_KEY, None)
        value.pop("sealed", None)  # the seal of the step's rows (oohcore.engine.records)
        if self.personal is not None and self.personal.status == "present":
            value.update(
                {k: v for k, v in (self.personal.data or {}).items() if not k.startswith("_")}
            )
        return value


@dataclass(frozen=True, slots=True)
class AuditProblem:
    """A break found in one organisation's chain (the first one), a personal-data record that
    is missing or altered, or a pinned head no longer on the chain."""

    organisation_id: str
    event_id: int | None
    seq: int | None
    message: str

    def __str__(self) -> str:
        where = f"organisation {self.organisation_id!r}"
        if self.event_id is not None:
            where += f", event id {self.event_id} (seq {self.seq})"
        elif self.seq is not None:
            where += f", seq {self.seq}"
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The result of :func:`verify`: ``ok`` when every checked chain is intact, every personal
    record matches its event's digest (or its purge is recorded) and every pin was found."""

    organisations: int
    events: int
    problems: tuple[AuditProblem, ...]
    personal_records: int = 0  # records checked against their digest (purged ones included)
    purged_records: int = 0
    pins: int = 0  # pinned heads (``expect=``) checked

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> AuditProblem | None:
        return self.problems[0] if self.problems else None

    def raise_if_broken(self) -> None:
        if self.problems:
            raise AuditChainError(self)

    def __str__(self) -> str:
        head = (
            f"audit log: {self.events} event(s) in {self.organisations} organisation chain(s), "
            f"{self.personal_records} personal record(s) ({self.purged_records} purged)"
        )
        if self.pins:
            head += f", {self.pins} pinned head(s)"
        if self.ok:
            return f"{head}: intact"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        return f"{head}: {len(self.problems)} problem(s)\n{lines}"


@dataclass(frozen=True, slots=True)
class ChainPin:
    """An event a host published or wrote down (``ORG:SEQ:HASH``), to check it is still on the
    chain: the defence against someone who rewrites a whole chain and its head."""

    organisation_id: str
    seq: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> ChainPin:
        """``ORG:SEQ:HASH`` (as ``oohcore audit head`` prints it) → a pin; ``ValueError`` if not."""
        parts = text.strip().rsplit(":", 2)
        if len(parts) != 3 or not parts[0]:
            raise ValueError(f"{text!r} is not ORG:SEQ:HASH (as 'oohcore audit head' prints it)")
        org, seq_text, digest = parts
        if not seq_text.isdigit() or int(seq_text) < 1:
            raise ValueError(f"{text!r}: the sequence number must be a whole number from 1")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
            raise ValueError(f"{text!r}: the hash must be 64 hexadecimal characters")
        return cls(org, int(seq_text), digest.lower())

    def __str__(self) -> str:
        return f"{self.organisation_id}:{self.seq}:{self.hash}"


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The newest event of one organisation's chain: publish :attr:`pin` somewhere the
    database's administrators cannot write, and verify against it later."""

    organisation_id: str
    seq: int
    hash: str
    at: datetime | None  # the time of that event; None if it is missing (run verify)

    @property
    def pin(self) -> ChainPin:
        return ChainPin(self.organisation_id, self.seq, self.hash)
