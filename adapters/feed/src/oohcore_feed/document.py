"""Feed documents: a service request as XML, checked against the shipped XSD (spec 7.8, 7.11).

:func:`service_request` turns one outbound message into a ``serviceRequest`` element;
:func:`feed_document` wraps entries in a ``serviceRequests`` root; :func:`check` validates a
document against ``schemas/feed-1.xsd`` and raises :class:`FeedDocumentError` naming the line
and what is wrong. The XSD travels inside the package (never fetched), parsed with the safe
parser.

What a message must carry (``OutboundMessage``):

* ``reference`` (or ``fields["reference"]``): the caller's reference number (5.2.2);
* ``fields["service_option"]`` (or ``meta["service_option"]``): the option's id, and
  ``fields["service_option_name"]`` its name when known (7.8: a feed per service option);
* ``fields["uprn"]``: always written; ``xsi:nil`` when the address has none (7.11);
* every other entry of ``fields`` becomes a ``field`` element (all the fields of the request),
  unless the organisation selected a subset.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from importlib.resources import files
from typing import Any

from lxml import etree

from oohcore.channels import OutboundMessage
from oohcore.errors import OohcoreError
from oohcore_feed.safexml import parse_xml

__all__ = [
    "ACK_NAMESPACE",
    "NAMESPACE",
    "FeedDocumentError",
    "check",
    "feed_document",
    "feed_schema",
    "schema_path",
    "service_request",
]

NAMESPACE = "urn:oohcore:feed:1"
ACK_NAMESPACE = "urn:oohcore:feed-ack:1"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
_N = f"{{{NAMESPACE}}}"

#: entries of ``fields`` written as elements of their own, not as ``field``
_PROMOTED = frozenset({"reference", "uprn", "service_option", "service_option_name"})

# XML 1.0 characters (section 2.2); anything else is replaced so that every answer can be written
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class FeedDocumentError(OohcoreError):
    """A feed document could not be made or does not match the feed's XSD."""


def schema_path(name: str = "feed-1.xsd") -> str:
    """The path of a schema shipped with the package (``feed-1.xsd``, ``feed-ack-1.xsd``), for
    tools such as ``xmllint --schema``."""
    return str(files("oohcore_feed") / "schemas" / name)


@cache
def feed_schema(name: str = "feed-1.xsd") -> etree.XMLSchema:
    """The compiled XSD (cached; lxml schemas may be shared between threads for validation)."""
    data = (files("oohcore_feed") / "schemas" / name).read_bytes()
    return etree.XMLSchema(parse_xml(data, source=schema_path(name)).getroottree())


def check(doc: etree._Element, *, schema: str = "feed-1.xsd") -> None:
    """Raise :class:`FeedDocumentError` unless ``doc`` is valid against ``schema``."""
    xsd = feed_schema(schema)
    if not xsd.validate(doc):
        problems = "; ".join(f"line {e.line}: {e.message}" for e in xsd.error_log)
        raise FeedDocumentError(f"the feed document does not match {schema}: {problems}")


def _text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


def _utc(when: datetime) -> str:
    if when.tzinfo is None or when.utcoffset() is None:
        raise FeedDocumentError(f"{when!r} has no time zone; the feed writes UTC times only")
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _field(parent: etree._Element, name: str, value: Any) -> None:
    el = etree.SubElement(parent, _N + "field", name=_text(name))
    if value is None or value == "":
        el.set("type", "empty")
    elif isinstance(value, bool):
        el.set("type", "boolean")
        el.text = "true" if value else "false"
    elif isinstance(value, int | float | Decimal):
        el.set("type", "number")
        el.text = str(value)
    elif isinstance(value, datetime):
        el.set("type", "datetime")
        el.text = _utc(value)
    elif isinstance(value, date):
        el.set("type", "date")
        el.text = value.isoformat()
    elif isinstance(value, list | tuple | set | frozenset):
        el.set("type", "list")
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        for item in items:
            etree.SubElement(el, _N + "item").text = _text(str(item))
    elif isinstance(value, Mapping):
        el.set("type", "json")
        el.text = _text(json.dumps(value, sort_keys=True, ensure_ascii=False, default=str))
    else:
        el.set("type", "text")
        el.text = _text(str(value))


def _uprn(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise FeedDocumentError(f"uprn {value!r} is not a UPRN (1 to 12 digits)")
    text = str(value).strip()
    if not re.fullmatch(r"[0-9]{1,12}", text):
        raise FeedDocumentError(f"uprn {text!r} is not a UPRN (1 to 12 digits)")
    return text


def service_request(
    message: OutboundMessage, sequence: int, *, select: Collection[str] | None = None
) -> etree._Element:
    """The ``serviceRequest`` element of ``message`` at ``sequence``.

    ``select``: the names of the fields the organisation asked for (7.8), or None for all of
    them; the reference, the service option and the UPRN are always written (7.11).
    """
    fields = message.fields
    reference = message.reference or fields.get("reference")
    if not reference:
        raise FeedDocumentError(
            f"message {message.idempotency_key!r} has no reference: the feed needs the caller's "
            "reference number (5.2.2) in OutboundMessage.reference or fields['reference']"
        )
    option = fields.get("service_option") or message.meta.get("service_option")
    if not option:
        raise FeedDocumentError(
            f"message {message.idempotency_key!r} names no service option: the feed is per "
            "service option (7.8); put its id in fields['service_option']"
        )
    entry = etree.Element(
        _N + "serviceRequest",
        sequence=str(sequence),
        key=_text(message.idempotency_key),
        purpose=_text(str(message.purpose)),
    )
    etree.SubElement(entry, _N + "reference").text = _text(str(reference))
    opt = etree.SubElement(entry, _N + "serviceOption", id=_text(str(option)))
    name = fields.get("service_option_name") or message.meta.get("service_option_name")
    if name:
        opt.text = _text(str(name))
    uprn = etree.SubElement(entry, _N + "uprn")
    number = _uprn(fields.get("uprn", message.meta.get("uprn")))
    if number is None:
        uprn.set(f"{{{XSI}}}nil", "true")
    else:
        uprn.text = number
    if message.call_id:
        etree.SubElement(entry, _N + "callId").text = _text(message.call_id)
    if message.recipient:
        etree.SubElement(entry, _N + "recipient").text = _text(message.recipient)
    if message.subject:
        etree.SubElement(entry, _N + "subject").text = _text(message.subject)
    if message.body:
        etree.SubElement(entry, _N + "summary").text = _text(message.body)
    container = etree.SubElement(entry, _N + "fields")
    wanted = None if select is None else frozenset(select)
    for key in sorted(fields):
        if key in _PROMOTED or (wanted is not None and key not in wanted):
            continue
        _field(container, key, fields[key])
    return entry


def feed_document(
    organisation_id: str, generated_at: datetime, entries: Iterable[etree._Element]
) -> etree._Element:
    """A ``serviceRequests`` document holding ``entries`` (in the order given)."""
    root = etree.Element(
        _N + "serviceRequests",
        nsmap={None: NAMESPACE, "xsi": XSI},
        version="1",
        organisation=_text(organisation_id),
        generatedAt=_utc(generated_at),
    )
    root.extend(entries)
    return root
