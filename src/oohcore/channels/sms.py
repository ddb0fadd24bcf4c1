"""Text messages as GOV.UK Notify and the mobile networks count them, and referral texts that fit.

An SMS is billed and split by *fragments*. This module counts them the way GOV.UK Notify does
(its ``notifications-utils`` rules since the August 2026 change that lets any character through):

* **Sanitising first.** A few characters that look alike are replaced before anything is
  counted: dashes and the minus sign become ``-``, typographic quotes become ``'`` and ``"``,
  the ellipsis becomes ``...``, non-breaking and narrow spaces and the tab become a space, and
  zero-width characters and line/paragraph separators are removed. Nothing else is changed: an
  accented letter stays as it is (it is not downgraded to its base letter).
* **GSM-7 or UCS-2.** A text made only of characters of the GSM 03.38 alphabet (and its
  extension table) is sent in GSM-7: 160 units in one fragment, else 153 per fragment, where the
  extension characters ``^ { } \\ [ ~ ] | €`` take two units each. One character outside it —
  a Welsh ``ŵ``, ``ŷ`` or ``â``, an ``á``, an emoji — makes the whole text UCS-2: 70 units in
  one fragment, else 67 per fragment, counted in UTF-16 code units (an emoji outside the Basic
  Multilingual Plane takes two), and the extension characters then count one each.
* **Notify's limit.** Notify refuses a text message whose content is longer than 918
  characters (six GSM-7 fragments), the service-name prefix not included.

Spec 5.2.5 asks that an SMS sent to an On-Call Duty Officer in a referral gives priority to
(a) the name of the contact, (b) the address, (c) the contact telephone number, (d) brief
details of the service request and (e) the reference number. :func:`compose_sms` builds that
text from a message's case fields so that it fits a configured fragment budget: when it does
not fit, the least important field is shortened first (details, then the phone number — which
is never cut, only left out — then the address, then the name), and the reference is never
shortened. If even the reference alone cannot fit, :class:`SmsCompositionError` says so.

This module has no dependencies beyond the standard library.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from oohcore.channels import ChannelError

__all__ = [
    "GSM7_CHARACTERS",
    "GSM7_EXTENDED",
    "NOTIFY_MAX_CHARACTERS",
    "REFERRAL_FIELDS",
    "ComposedSms",
    "SmsCompositionError",
    "SmsLength",
    "compose_sms",
    "measure",
    "sanitise",
]

GSM7_EXTENDED = frozenset("^{}\\[~]|€")
"""Characters of the GSM 03.38 extension table: each is sent as an escape and a code (2 units)."""

GSM7_CHARACTERS = (
    frozenset(
        "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
        "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    )
    | GSM7_EXTENDED
)
"""Every character a GSM-7 text may hold (the basic alphabet and the extension table)."""

NOTIFY_MAX_CHARACTERS = 918
"""The longest text message content GOV.UK Notify accepts, in characters (prefix excluded)."""

# What Notify replaces before it counts or sends (the rest is left alone).
_REPLACEMENTS = {
    "\u2011": "-",  # non-breaking hyphen
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2212": "-",  # minus sign
    "\u2026": "...",  # horizontal ellipsis
    "\u2018": "'",  # left single quotation mark
    "\u2019": "'",  # right single quotation mark
    "\u201a": "'",  # single low-9 quotation mark
    "\u201c": '"',  # left double quotation mark
    "\u201d": '"',  # right double quotation mark
    "\u201e": '"',  # double low-9 quotation mark
    "\u180e": "",  # Mongolian vowel separator
    "\u200b": "",  # zero width space
    "\u200c": "",  # zero width non-joiner
    "\u2060": "",  # word joiner
    "\ufeff": "",  # zero width no-break space
    "\u2028": "",  # line separator
    "\u2029": "",  # paragraph separator
    "\u00a0": " ",  # no-break space
    "\u202f": " ",  # narrow no-break space
    "\t": " ",
}
_TRANSLATE = str.maketrans(_REPLACEMENTS)

_GSM_SINGLE, _GSM_MULTI = 160, 153
_UCS2_SINGLE, _UCS2_MULTI = 70, 67

Encoding = Literal["gsm-7", "ucs-2"]

REFERRAL_FIELDS: tuple[str, ...] = ("caller_name", "address", "phone", "details")
"""The case fields of a referral SMS in the priority order of 5.2.5 (a)-(d); the reference (e)
is passed on its own because it is never shortened."""

_ATOMIC = frozenset({"phone"})  # a cut telephone number is a wrong number: whole or left out
_MARK = "..."  # shows a field was cut (GSM-7, one unit each)
_MIN_KEPT = 4  # a field cut to fewer characters than this is left out instead
_SPACES = re.compile(r"\s+")


class SmsCompositionError(ChannelError):
    """A text message cannot be made to fit its budget (even the reference alone is too long)."""


@dataclass(frozen=True, slots=True)
class SmsLength:
    """How a text is sent: its encoding, its length in characters and units, its fragments."""

    encoding: Encoding
    characters: int  # after sanitising; what Notify's 918-character limit counts
    units: int  # GSM-7 septets (extension characters twice) or UTF-16 code units
    fragments: int

    @property
    def within_notify_limit(self) -> bool:
        return self.characters <= NOTIFY_MAX_CHARACTERS


@dataclass(frozen=True, slots=True)
class ComposedSms:
    """A referral text built by :func:`compose_sms`."""

    body: str  # the text for the template's ((body)) placeholder, sanitised
    values: Mapping[str, str]  # each field as it appears in ``body`` (shortened or not)
    length: SmsLength  # of the whole text delivered: prefix + template with the body
    shortened: tuple[str, ...] = ()  # fields that were cut to fit
    omitted: tuple[str, ...] = ()  # fields that were left out to fit


def sanitise(text: str) -> str:
    """``text`` with the characters Notify replaces before sending replaced (see module doc)."""
    return text.translate(_TRANSLATE)


def measure(text: str, *, prefix: str | None = None) -> SmsLength:
    """How Notify counts ``text`` (sanitised first). ``prefix`` is the service name Notify puts
    before every text (``"Example Council: "``) when the service is set to do so: it counts in
    the fragments but not in the 918-character limit."""
    content = sanitise(text)
    sent = f"{sanitise(prefix)}: {content}" if prefix else content
    if all(c in GSM7_CHARACTERS for c in sent):
        units = len(sent) + sum(1 for c in sent if c in GSM7_EXTENDED)
        return SmsLength("gsm-7", len(content), units, _fragments(units, _GSM_SINGLE, _GSM_MULTI))
    units = len(sent.encode("utf-16-le")) // 2
    return SmsLength("ucs-2", len(content), units, _fragments(units, _UCS2_SINGLE, _UCS2_MULTI))


def _fragments(units: int, single: int, multi: int) -> int:
    if units == 0:
        return 0
    return 1 if units <= single else math.ceil(units / multi)


def compose_sms(
    fields: Mapping[str, object],
    *,
    reference: str | None,
    max_fragments: int = 2,
    order: Sequence[str] = REFERRAL_FIELDS,
    template: str = "((body))",
    prefix: str | None = None,
    separator: str = "\n",
    reference_label: str = "Ref ",
) -> ComposedSms:
    """The referral text for ``fields`` that fits ``max_fragments`` fragments (5.2.5).

    ``fields`` are the message's case data by name; those named in ``order`` (most important
    first) and not empty are used, each on its own line (``separator``), followed by
    ``reference_label`` and ``reference``. ``template`` is the text of the Notify template with
    a ``((body))`` placeholder, and ``prefix`` the service name Notify puts in front, so that
    the count covers exactly what the officer's phone receives. Raises
    :class:`SmsCompositionError` when the reference and the template alone do not fit.
    """
    if max_fragments < 1:
        raise SmsCompositionError(f"max_fragments must be at least 1, not {max_fragments}")
    if "((body))" not in template:
        raise SmsCompositionError(
            f"the SMS template {template!r} has no ((body)) placeholder for the composed text"
        )
    values: dict[str, str] = {}
    for name in order:
        raw = fields.get(name)
        if raw is None:
            continue
        cleaned = _SPACES.sub(" ", sanitise(str(raw))).strip()
        if cleaned:
            values[name] = cleaned
    tail = f"{reference_label}{_SPACES.sub(' ', sanitise(reference)).strip()}" if reference else ""

    def render(parts: Mapping[str, str]) -> str:
        return separator.join([*parts.values(), *([tail] if tail else [])])

    def fits(parts: Mapping[str, str]) -> bool:
        length = measure(template.replace("((body))", render(parts)), prefix=prefix)
        return length.fragments <= max_fragments and length.within_notify_limit

    def result(parts: dict[str, str], shortened: list[str], omitted: list[str]) -> ComposedSms:
        body = render(parts)
        length = measure(template.replace("((body))", body), prefix=prefix)
        kept = dict(parts)
        if tail and reference:
            kept["reference"] = reference
        return ComposedSms(body, kept, length, tuple(shortened), tuple(omitted))

    if fits(values):
        return result(values, [], [])
    if not fits({}):
        what = "the reference" if tail else "the template"
        raise SmsCompositionError(
            f"{what} alone does not fit in {max_fragments} SMS fragment(s) "
            f"({measure(template.replace('((body))', tail), prefix=prefix)}); raise the "
            "fragment budget or shorten the template or the service-name prefix"
        )
    shortened: list[str] = []
    omitted: list[str] = []
    for name in reversed([n for n in order if n in values]):
        full = values[name]
        without = {k: v for k, v in values.items() if k != name}
        if name not in _ATOMIC:
            cut = _longest_cut(full, _with(fits, values, name))
            if cut is not None:
                values[name] = cut
                shortened.append(name)
                return result(values, shortened, omitted)
        values = without
        omitted.append(name)
        if fits(values):
            return result(values, shortened, omitted)
    return result(values, shortened, omitted)  # pragma: no cover - fits({}) holds


def _with(
    fits: Callable[[Mapping[str, str]], bool], values: Mapping[str, str], name: str
) -> Callable[[str], bool]:
    """Whether ``values`` with ``name`` set to a candidate fits."""
    return lambda candidate: fits({**values, name: candidate})


def _cut(value: str, keep: int) -> str:
    """``value`` cut to about ``keep`` characters, at a word boundary where one is near."""
    head = value[:keep].rstrip()
    space = head.rfind(" ")
    if space >= max(_MIN_KEPT, keep // 2):
        head = head[:space].rstrip(" ,;:/-")
    return head + _MARK


def _longest_cut(value: str, fits: Callable[[str], bool]) -> str | None:
    """The longest cut of ``value`` that ``fits`` accepts, or None (binary search on length)."""
    low, high, best = _MIN_KEPT, len(value) - 1, None
    while low <= high:
        middle = (low + high) // 2
        candidate = _cut(value, middle)
        if fits(candidate):
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best
