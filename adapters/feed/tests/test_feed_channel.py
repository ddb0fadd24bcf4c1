"""The feed channel against its real peers: xmllint checks every document against the shipped
XSD, OpenSSL decrypts what is encrypted, xmlsec1 and signxml verify what is signed, and a
consumer reads the folder by cursor (spec 7.8, 7.11)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from oohcore.channels import ChannelError, DeliveryStatus, OutboundMessage, ReceiptState
from oohcore.channels.testing import ChannelContract, sample_message
from oohcore.clock import ManualClock
from oohcore_feed import FeedChannel, FeedConfig, parse_xml, read_feed, schema_path
from oohcore_feed.protect import decrypt, verify

N = "{urn:oohcore:feed:1}"
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


def message(key: str = "call-1:feed", **fields: Any) -> OutboundMessage:
    base = sample_message("daytime", key=key, channel="feed")
    merged = {
        **base.fields,
        "service_option": "housing-repairs",
        "service_option_name": "Housing repairs",
        **fields,
    }
    return replace(base, fields={k: v for k, v in merged.items() if v is not ...})


def only_document(folder: Path) -> Path:
    entries = read_feed(folder).entries
    assert len(entries) == 1
    return entries[0].path


@pytest.fixture
def plain(tmp_path: Path, clock: ManualClock) -> Iterator[FeedChannel]:
    channel = FeedChannel(directory=tmp_path / "feed", clock=clock, fsync=False)
    yield channel
    channel.close()


class TestFeedContract(ChannelContract):
    recipient = "daytime"
    logical_channel = "feed"
    secrets = ("feed-signing-pass-7Qx",)

    def message(self, key: str | None = None, body: str | None = None) -> OutboundMessage:
        base = super().message(key, body)
        return replace(base, fields={**base.fields, "service_option": "housing-repairs"})

    @pytest.fixture
    def channel(self, tmp_path: Path, pki: dict[str, Any], clock: ManualClock) -> Iterator[Any]:
        signer = pki["signer"]
        channel = FeedChannel(
            directory=tmp_path / "feed",
            sign_key=signer.key,
            sign_cert=signer.cert,
            sign_key_password=signer.password,
            clock=clock,
        )
        yield channel
        channel.close()

    @pytest.fixture
    def peer(self, tmp_path: Path, consumer: Callable[[Path], Any]) -> Any:
        return consumer(tmp_path / "feed")


def test_every_document_validates_against_the_xsd_with_xmllint(
    plain: FeedChannel, xmllint: Callable[[str, Path], subprocess.CompletedProcess[bytes]]
) -> None:
    from datetime import UTC, date, datetime

    result = plain.send(
        message(
            elderly=True,
            rooms=3,
            first_seen=datetime(2026, 12, 2, 2, 50, tzinfo=UTC),
            moved_in=date(2019, 4, 1),
            problems=["boiler", "radiators"],
            notes=None,
            extra={"floor": 2},
            odd="bell \x07 character",
        )
    )
    assert result.status is DeliveryStatus.SENT, result.error
    path = only_document(plain.config.directory)
    done = xmllint(schema_path(), path)
    assert done.returncode == 0, done.stderr.decode()
    assert b"validates" in done.stderr
    doc = parse_xml(path.read_bytes())
    fields = {f.get("name"): f for f in doc.iter(f"{N}field")}
    assert fields["elderly"].get("type") == "boolean" and fields["elderly"].text == "true"
    assert fields["rooms"].get("type") == "number"
    assert fields["first_seen"].text == "2026-12-02T02:50:00Z"
    assert fields["moved_in"].get("type") == "date"
    assert [i.text for i in fields["problems"]] == ["boiler", "radiators"]
    assert fields["notes"].get("type") == "empty"
    assert fields["odd"].text == "bell \ufffd character"  # not XML 1.0: replaced, still valid
    # all the fields of the request (7.8)
    for name in ("caller_name", "address", "phone", "details"):
        assert name in fields
    assert doc.get("generatedAt") == "2026-12-02T03:15:00Z"  # the injected clock


def test_xmllint_rejects_a_document_that_breaks_the_schema(
    plain: FeedChannel,
    xmllint: Callable[[str, Path], subprocess.CompletedProcess[bytes]],
    tmp_path: Path,
) -> None:
    """The XSD check is real: a document without its UPRN element does not validate."""
    plain.send(message())
    doc = parse_xml(only_document(plain.config.directory).read_bytes())
    uprn = next(doc.iter(f"{N}uprn"))
    uprn.getparent().remove(uprn)  # type: ignore[union-attr]
    broken = tmp_path / "broken.xml"
    broken.write_bytes(etree.tostring(doc))
    done = xmllint(schema_path(), broken)
    assert done.returncode != 0
    assert b"uprn" in done.stderr


def test_the_uprn_is_always_present_and_nil_when_unknown(plain: FeedChannel) -> None:
    plain.send(message("known"))
    plain.send(message("unknown", uprn=None))
    docs = [parse_xml(e.read_bytes()) for e in read_feed(plain.config.directory).entries]
    known, unknown = (next(d.iter(f"{N}uprn")) for d in docs)
    assert known.text == "100023336956" and known.get(XSI_NIL) is None
    assert unknown.text is None and unknown.get(XSI_NIL) == "true"


def test_a_bad_uprn_is_a_permanent_failure_and_nothing_is_written(plain: FeedChannel) -> None:
    result = plain.send(message(uprn="12 Heron Way"))
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert "not a UPRN" in (result.error or "")
    assert read_feed(plain.config.directory).entries == ()
    assert plain.send(message("next")).provider_ref == "000000000001"  # no gap left


def test_a_message_without_a_service_option_is_refused(plain: FeedChannel) -> None:
    result = plain.send(message(service_option=...))
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert "service option" in (result.error or "")
    assert read_feed(plain.config.directory).entries == ()


def test_the_organisation_selects_its_fields_per_option(tmp_path: Path, clock: ManualClock) -> None:
    channel = FeedChannel(
        FeedConfig(
            directory=tmp_path / "feed",
            fields=("details",),
            option_fields={"noise": ("caller_name", "address")},
            fsync=False,
        ),
        clock=clock,
    )
    channel.send(message("repairs"))
    channel.send(message("noise", service_option="noise"))
    docs = [parse_xml(e.read_bytes()) for e in read_feed(tmp_path / "feed").entries]
    names = [sorted(str(f.get("name")) for f in d.iter(f"{N}field")) for d in docs]
    assert names == [["details"], ["address", "caller_name"]]
    for d in docs:  # 7.11 and 5.2.2: never left out by a selection
        assert next(d.iter(f"{N}uprn")).text == "100023336956"
        assert next(d.iter(f"{N}reference")).text == "K7Q2M4"
    channel.close()


def test_a_consumer_resumes_from_its_cursor(plain: FeedChannel) -> None:
    for i in range(5):
        assert plain.send(message(f"k{i}")).provider_ref == f"{i + 1:012d}"
    folder = plain.config.directory
    first = read_feed(folder, after=0, limit=2)
    assert [e.sequence for e in first.entries] == [1, 2] and first.more
    second = read_feed(folder, after=first.cursor, limit=2)
    assert [e.sequence for e in second.entries] == [3, 4] and second.cursor == 4
    third = read_feed(folder, after=second.cursor, limit=2)
    assert [e.sequence for e in third.entries] == [5] and not third.more
    assert read_feed(folder, after=third.cursor).entries == ()
    assert read_feed(folder, after=third.cursor).cursor == 5
    plain.send(message("k5"))
    assert [e.sequence for e in read_feed(folder, after=5).entries] == [6]


def test_another_organisations_message_is_refused(tmp_path: Path) -> None:
    channel = FeedChannel(directory=tmp_path, organisation_id="other-council", fsync=False)
    result = channel.send(message())
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert "other-council" in (result.error or "")
    channel.close()


def test_a_crash_between_index_and_publish_is_finished_by_the_next_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "feed"
    channel = FeedChannel(directory=folder)
    real_replace = os.replace

    def crash(src: Any, dst: Any) -> None:
        raise KeyboardInterrupt("killed between the index line and the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        channel.send(message("interrupted"))
    monkeypatch.setattr(os, "replace", real_replace)
    assert read_feed(folder).entries == ()  # nothing half-published
    channel.close()

    reopened = FeedChannel(directory=folder)
    assert [e.sequence for e in read_feed(folder).entries] == [1]
    again = reopened.send(message("interrupted"))  # the outbox sends it again
    assert again.status is DeliveryStatus.SENT and again.duplicate
    assert reopened.send(message("later")).provider_ref == "000000000002"
    reopened.close()


def test_a_crash_before_the_index_leaves_nothing_and_the_resend_writes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "feed"
    channel = FeedChannel(directory=folder)
    real_write = os.write

    def crash(fd: int, data: Any) -> int:
        if bytes(data).startswith(b"1\t"):
            raise KeyboardInterrupt("killed before the index line")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", crash)
    with pytest.raises(KeyboardInterrupt):
        channel.send(message("interrupted"))
    monkeypatch.setattr(os, "write", real_write)
    channel.close()
    assert any(n.startswith(".tmp-") for n in os.listdir(folder))

    reopened = FeedChannel(directory=folder)
    assert not any(n.startswith(".tmp-") for n in os.listdir(folder))
    result = reopened.send(message("interrupted"))
    assert result.status is DeliveryStatus.SENT and not result.duplicate
    assert [e.sequence for e in read_feed(folder).entries] == [1]
    reopened.close()


def test_two_processes_share_a_folder_without_gaps_or_duplicates(tmp_path: Path) -> None:
    folder = tmp_path / "feed"
    script = textwrap.dedent(
        f"""
        import sys
        from dataclasses import replace
        from oohcore.channels.testing import sample_message
        from oohcore_feed import FeedChannel
        channel = FeedChannel(directory={str(folder)!r}, fsync=False)
        for i in range(25):
            m = sample_message("daytime", key=f"{{i % 20}}", channel="feed")
            m = replace(m, fields={{**m.fields, "service_option": "noise"}})
            assert channel.send(m).status.value == "sent"
        """
    )
    writers = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(2)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    entries = read_feed(folder, limit=1000).entries
    assert [e.sequence for e in entries] == list(range(1, 21))
    keys = [str(parse_xml(e.read_bytes())[0].get("key")) for e in entries]
    assert sorted(keys, key=int) == [str(i) for i in range(20)]


def test_a_signed_document_verifies_with_xmlsec1_and_signxml(
    tmp_path: Path,
    pki: dict[str, Any],
    tool: Callable[..., subprocess.CompletedProcess[bytes]],
    xmllint: Callable[[str, Path], subprocess.CompletedProcess[bytes]],
) -> None:
    signer = pki["signer"]
    channel = FeedChannel(
        directory=tmp_path / "feed",
        sign_key=signer.key,
        sign_cert=signer.cert,
        sign_key_password=signer.password,
        fsync=False,
    )
    channel.send(message())
    path = only_document(tmp_path / "feed")
    assert xmllint(schema_path(), path).returncode == 0
    done = tool("xmlsec1", "--verify", "--trusted-pem", signer.cert, path)
    assert done.returncode == 0, done.stderr.decode()
    signed = verify(path.read_bytes(), cert_pem=signer.cert.read_bytes())
    assert next(signed.iter(f"{N}reference")).text == "K7Q2M4"

    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(path.read_bytes().replace(b"100023336956", b"100023336957"))
    assert tool("xmlsec1", "--verify", "--trusted-pem", signer.cert, tampered).returncode != 0
    with pytest.raises(Exception, match=r"(?i)digest|signature"):
        verify(tampered.read_bytes(), cert_pem=signer.cert.read_bytes())
    channel.close()


def test_an_encrypted_document_is_decrypted_by_openssl_cms(
    tmp_path: Path,
    pki: dict[str, Any],
    tool: Callable[..., subprocess.CompletedProcess[bytes]],
    xmllint: Callable[[str, Path], subprocess.CompletedProcess[bytes]],
) -> None:
    signer, council, stranger = pki["signer"], pki["council"], pki["stranger"]
    channel = FeedChannel(
        directory=tmp_path / "feed",
        encrypt_to=(council.cert,),
        sign_key=signer.key,
        sign_cert=signer.cert,
        sign_key_password=signer.password,
        fsync=False,
    )
    assert channel.send(message()).status is DeliveryStatus.SENT
    entry = read_feed(tmp_path / "feed").entries[0]
    assert entry.encrypted and entry.path.name == "000000000001.xml.p7m"
    assert b"Ann Lee" not in entry.read_bytes()
    out = tmp_path / "decrypted.xml"
    common = ["cms", "-decrypt", "-inform", "DER", "-in", entry.path, "-binary"]
    done = tool("openssl", *common, "-recip", council.cert, "-inkey", council.key, "-out", out)
    assert done.returncode == 0, done.stderr.decode()
    assert xmllint(schema_path(), out).returncode == 0
    assert tool("xmlsec1", "--verify", "--trusted-pem", signer.cert, out).returncode == 0
    assert b"Ann Lee" in out.read_bytes()
    wrong = tool("openssl", *common, "-recip", stranger.cert, "-inkey", stranger.key)
    assert wrong.returncode != 0
    # the library's own reader gives the same bytes
    cert = x509.load_pem_x509_certificate(council.cert.read_bytes())
    key = serialization.load_pem_private_key(council.key.read_bytes(), None)
    assert decrypt(entry.read_bytes(), cert, key) == out.read_bytes()
    channel.close()


def ack(through: int, *rejected: tuple[int, str], org: str = "example-borough") -> bytes:
    rows = "".join(f'<rejected sequence="{s}">{why}</rejected>' for s, why in rejected)
    return (
        f'<acknowledgement xmlns="urn:oohcore:feed-ack:1" organisation="{org}" '
        f'through="{through}" at="2026-12-02T03:20:00Z">{rows}</acknowledgement>'
    ).encode()


def test_a_consumers_acknowledgement_becomes_receipts(plain: FeedChannel) -> None:
    for i in range(3):
        plain.send(message(f"k{i}"))
    receipts = plain.receipts(ack(3, (2, "unknown service option")))
    assert [(r.idempotency_key, r.state) for r in receipts] == [
        ("k0", ReceiptState.DELIVERED),
        ("k1", ReceiptState.PERMANENT_FAILURE),
        ("k2", ReceiptState.DELIVERED),
    ]
    assert receipts[1].detail == "unknown service option"
    assert receipts[0].provider_ref == "000000000001" and receipts[0].at.tzinfo is not None
    assert [r.idempotency_key for r in plain.receipts(ack(3), after=2)] == ["k2"]


def test_a_bad_acknowledgement_is_refused_with_a_located_message(plain: FeedChannel) -> None:
    from oohcore_feed import UnsafeXMLError, XMLInputError

    plain.send(message("k0"))
    with pytest.raises(UnsafeXMLError):
        plain.receipts(b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + ack(1))
    with pytest.raises(XMLInputError, match="has not written"):
        plain.receipts(ack(2))
    with pytest.raises(XMLInputError, match=r"feed-ack-1\.xsd"):
        plain.receipts(b'<acknowledgement xmlns="urn:oohcore:feed-ack:1" through="x"/>')


def test_configuration_mistakes_name_the_field_and_never_the_password(tmp_path: Path) -> None:
    with pytest.raises(ChannelError) as caught:
        FeedChannel(directory=tmp_path, sign_key_password="hunter2-secret", colour="blue")
    assert "colour" in str(caught.value)
    assert "hunter2-secret" not in str(caught.value)
    with pytest.raises(ChannelError, match="both sign_key and sign_cert"):
        FeedChannel(directory=tmp_path, sign_key=tmp_path / "k.pem")
    with pytest.raises(ChannelError, match="cannot read"):
        FeedChannel(directory=tmp_path, encrypt_to=[tmp_path / "missing.pem"])
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    with pytest.raises(Exception, match="not a PEM certificate"):
        FeedChannel(directory=tmp_path, encrypt_to=[not_pem])


def test_the_entry_point_loads_the_channel_by_name() -> None:
    from oohcore.channels import load_channels

    assert load_channels()["feed"] is FeedChannel
