"""The safe XML parser refuses DOCTYPEs, entities, network access and oversized inputs
(issue "XML feed": "Parsing anywhere in oohcore refuses DOCTYPEs, entities and network access")."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from oohcore_feed import UnsafeXMLError, XMLInputError, parse_xml, parse_xml_file

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>
"""


class _DtdServer(BaseHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        body = b'<!ENTITY secret "from the network">'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def dtd_server() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on loopback serving a DTD: it must never be asked for anything."""
    _DtdServer.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DtdServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _DtdServer.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_plain_document_is_read() -> None:
    root = parse_xml(b"<?xml version='1.0'?><a x='1'><b>caf\xc3\xa9</b></a>")
    assert root.tag == "a" and root.findtext("b") == "café"


def test_billion_laughs_is_refused_without_expanding() -> None:
    with pytest.raises(UnsafeXMLError) as caught:
        parse_xml(BILLION_LAUGHS, source="laughs.xml")
    message = str(caught.value)
    assert message.startswith("laughs.xml:")
    assert "DOCTYPE" in message or "entit" in message
    assert "lollol" not in message


def test_an_external_entity_file_is_refused_and_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    evil = tmp_path / "evil.xml"
    evil.write_bytes(
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "{secret.as_uri()}">]>'
        "<r>&x;</r>".encode()
    )
    with pytest.raises(UnsafeXMLError) as caught:
        parse_xml_file(evil)
    assert str(caught.value).startswith(f"{evil}:")
    assert "TOP-SECRET-CONTENT" not in str(caught.value)


def test_an_external_dtd_on_the_network_is_never_fetched(
    dtd_server: tuple[str, list[str]],
) -> None:
    url, requests = dtd_server
    for doc in (
        f'<!DOCTYPE r SYSTEM "{url}/evil.dtd"><r>&secret;</r>',
        f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{url}/p.dtd"> %p;]><r/>',
        f'<!DOCTYPE r [<!ENTITY e SYSTEM "{url}/e.txt">]><r>&e;</r>',
    ):
        with pytest.raises(UnsafeXMLError):
            parse_xml(doc.encode())
    assert requests == []


def test_a_doctype_without_entities_is_refused_too() -> None:
    with pytest.raises(UnsafeXMLError, match="DOCTYPE"):
        parse_xml(b'<?xml version="1.0"?><!DOCTYPE html><html/>')


def test_a_doctype_in_utf16_is_refused() -> None:
    doc = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY a "b">]><r>&a;</r>'
    with pytest.raises(UnsafeXMLError):
        parse_xml(doc.encode("utf-16"))


def test_an_oversized_document_is_refused_before_parsing() -> None:
    with pytest.raises(UnsafeXMLError, match="more than the 1,000"):
        parse_xml(b"<a>" + b"x" * 2000 + b"</a>", max_bytes=1000)


def test_a_malformed_document_gets_a_located_message() -> None:
    with pytest.raises(XMLInputError) as caught:
        parse_xml(b"<a>\n  <b>\n</a>", source="answer.xml")
    error = caught.value
    assert not isinstance(error, UnsafeXMLError)
    assert (error.source, error.line) == ("answer.xml", 3)
    assert str(error).startswith("answer.xml:3:")
    assert "not well-formed" in str(error)


def test_an_unreadable_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(XMLInputError, match="cannot be read"):
        parse_xml_file(tmp_path / "missing.xml")
