"""The one way oohcore reads XML: no DOCTYPE, no entities, no network, a size cap.

Any XML that reaches oohcore from outside (a feed consumer's acknowledgement, an Open311 CRM's
answer, a schema shipped beside the code) is parsed by :func:`parse_xml`. It refuses, before or
while parsing and always with a located message:

* a document larger than ``max_bytes`` (default 10 MiB) — it is not even parsed;
* a DOCTYPE of any kind (internal subset, external DTD): the billion-laughs expansion and
  external entities (``file:``, ``http:``) both need one, so none is ever loaded or expanded;
* an entity reference left in the tree, and any network access (libxml2's ``no_network``);
* a document deeper or with longer text nodes than libxml2's default limits (``huge_tree`` off).

``lxml.etree.XMLParser`` alone resolves internal entities by default and would read an external
DTD when asked, so the parser here is configured explicitly and the DOCTYPE check comes after
parsing, on what libxml2 saw (a byte scan alone would miss a document in UTF-16).
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from oohcore.errors import OohcoreError

__all__ = ["DEFAULT_MAX_BYTES", "UnsafeXMLError", "XMLInputError", "parse_xml", "parse_xml_file"]

DEFAULT_MAX_BYTES = 10 * 1024 * 1024


class XMLInputError(OohcoreError):
    """An XML input could not be read: not well-formed, or refused as unsafe.

    ``source`` names the input (a file path, a URL without its query), ``line`` and ``col``
    are 1-based (0 when the whole input is at fault).
    """

    def __init__(self, source: str, line: int, col: int, message: str) -> None:
        self.source = source
        self.line = line
        self.col = col
        self.reason = message
        super().__init__(f"{source}:{line}:{col}: {message}")


class UnsafeXMLError(XMLInputError):
    """An XML input was refused because reading it could be unsafe (DOCTYPE, entity, size)."""


def _parser() -> etree.XMLParser:
    # A fresh parser per call: lxml parsers are not safe to share between threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,
        collect_ids=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_xml(
    data: bytes, *, source: str = "<xml>", max_bytes: int = DEFAULT_MAX_BYTES
) -> etree._Element:
    """Parse ``data`` safely and return its root element (see the module's docstring).

    Raises :class:`UnsafeXMLError` for a refused input and :class:`XMLInputError` for one that is
    not well-formed; the message says where and what to do.
    """
    if not isinstance(data, bytes | bytearray):
        raise TypeError("parse_xml takes bytes (the document as it arrived, with its encoding)")
    if len(data) > max_bytes:
        raise UnsafeXMLError(
            source,
            0,
            0,
            f"the document is {len(data):,} bytes, more than the {max_bytes:,} this reader "
            "accepts; send it in smaller parts or raise max_bytes",
        )
    try:
        root = etree.fromstring(bytes(data), _parser())
    except etree.XMLSyntaxError as exc:
        line, col = exc.position if exc.position else (0, 0)
        message = exc.msg or str(exc)
        if "entity" in message.lower():
            raise UnsafeXMLError(
                source, line, col, f"{message}: entities are not accepted in oohcore's XML inputs"
            ) from None
        raise XMLInputError(source, line, col, f"not well-formed XML: {message}") from None
    tree = root.getroottree()
    docinfo = tree.docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UnsafeXMLError(
            source,
            1,
            1,
            "the document has a DOCTYPE; oohcore reads no DTDs and expands no entities "
            "(a DOCTYPE is how billion-laughs and external-entity attacks begin): "
            "send the document without its DOCTYPE line",
        )
    for node in root.iter(etree.Entity):
        raise UnsafeXMLError(
            source,
            node.sourceline or 0,
            0,
            f"the entity reference {node.text} is not accepted: write the character itself",
        )
    return root


def parse_xml_file(path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """:func:`parse_xml` of a file's bytes; ``source`` is its path."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise UnsafeXMLError(
                str(p), 0, 0, f"the file is {size:,} bytes, more than the {max_bytes:,} accepted"
            )
        data = p.read_bytes()
    except OSError as exc:
        raise XMLInputError(str(p), 0, 0, f"cannot be read: {exc.strerror}") from None
    return parse_xml(data, source=str(p), max_bytes=max_bytes)
