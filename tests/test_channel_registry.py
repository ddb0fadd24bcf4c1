"""The channel registry: built-in adapters through entry points, typed configuration with
secrets that never print, located errors for a bad channels.yaml, and ``oohcore channels``."""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from pydantic import SecretStr

from oohcore.channels import (
    ChannelConfig,
    ChannelConfigError,
    ChannelInfo,
    DeliveryResult,
    OutboundMessage,
    build_channels,
)
from oohcore.channels.local import LocalChannel, MemoryChannel
from oohcore.cli import main
from oohcore.rulesets.source import read_yaml


def test_the_built_in_channels_register_through_the_entry_point_group() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="oohcore.channels")}
    assert found["local"] == "oohcore.channels.local:LocalChannel"
    assert found["console"] == "oohcore.channels.local:ConsoleChannel"
    assert found["memory"] == "oohcore.channels.local:MemoryChannel"


class GatewayConfig(ChannelConfig):
    url: str
    api_key: SecretStr


class Gateway:
    name = "gateway"
    info = ChannelInfo(carries=frozenset({"sms"}), contact_field="phone", config=GatewayConfig)

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config

    def send(self, message: OutboundMessage) -> DeliveryResult:
        return DeliveryResult.sent()

    def close(self) -> None:
        pass


def test_build_channels_from_a_mapping_with_a_secret_from_the_environment(tmp_path: Path) -> None:
    built = build_channels(
        {
            "sms": {"adapter": "gateway", "url": "http://127.0.0.1:9", "api_key": {"env": "KEY"}},
            "pager": {"adapter": "local", "path": str(tmp_path / "p.jsonl"), "fsync": False},
            "email": {"adapter": "memory", "contact_field": "email"},
        },
        registry={"gateway": Gateway, "local": LocalChannel, "memory": MemoryChannel},
        environ={"KEY": "s3cret-value"},
    )
    sms = built["sms"]
    assert isinstance(sms, Gateway)
    assert sms.config.api_key.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(sms.config) + str(sms.config) + sms.config.model_dump_json()
    assert isinstance(built["pager"], LocalChannel) and built["pager"].path == tmp_path / "p.jsonl"
    assert built["email"].info.contact_field == "email"
    for channel in built.values():
        channel.close()


def test_a_bad_channels_file_gets_located_problems_and_no_channel(tmp_path: Path) -> None:
    path = tmp_path / "channels.yaml"
    path.write_text(
        "channels:\n"
        "  sms:\n"
        "    adapter: gateway\n"
        "    url: 42\n"
        "    api_key: hunter2-secret\n"
        "    retries: 3\n"
        "  pager:\n"
        "    adapter: pagr\n"
        "  feed:\n"
        "    adapter: gateway\n"
    )
    source = read_yaml(path)
    with pytest.raises(ChannelConfigError) as info:
        build_channels(
            source.data["channels"],
            registry={"gateway": Gateway, "pager": Gateway},
            source=source,
            within=("channels",),
        )
    shown = [str(p) for p in info.value.problems]
    assert f"{path}:4:10: channel 'sms': setting 'url': Input should be a valid string" in shown
    assert any(
        s.startswith(f"{path}:6:14: channel 'sms': 'gateway' has no setting 'retries'")
        for s in shown
    )
    assert (
        f"{path}:8:14: channel 'pager': no adapter named 'pagr' is installed (installed: gateway, pager); did you mean 'pager'?"
        in shown
    )
    assert any(
        s.startswith(f"{path}:10:5: channel 'feed': 'gateway' needs the setting") for s in shown
    )
    assert "hunter2-secret" not in str(info.value)


def test_oohcore_channels_lists_every_adapter(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["channels", "--json"]) == 0
    listed = {a["name"]: a for a in json.loads(capsys.readouterr().out)["adapters"]}
    local = listed["local"]
    assert local["factory"] == "oohcore.channels.local:LocalChannel"
    assert local["send_timeout_seconds"] == 1.0 and local["receipts"] is False
    assert local["config"]["required"] == ["path"]
    assert {"console", "memory"} <= set(listed)
    assert main(["channels"]) == 0
    assert "local  (oohcore.channels.local:LocalChannel)" in capsys.readouterr().out


def test_oohcore_channels_check_reports_at_file_line_col(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(f"channels:\n  sms:\n    adapter: local\n    path: {tmp_path / 'o.jsonl'}\n")
    assert main(["channels", "--check", str(good)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("channels:\n  sms:\n    adapter: locl\n")
    assert main(["channels", "--check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3:14: channel 'sms': no adapter named 'locl'" in err
    assert "Traceback" not in err


def test_a_config_model_never_quotes_a_rejected_value() -> None:
    """A secret put in the wrong field (here ``url`` as a number) must not appear in the error,
    even when an adapter's model is built directly, not through build_channels."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as caught:
        GatewayConfig.model_validate({"url": 74531980026417, "api_key": "k"})
    assert "74531980026417" not in str(caught.value)
    assert "url" in str(caught.value)


def test_retry_after_reads_seconds_and_http_dates_and_is_capped() -> None:
    """The one reading of an HTTP Retry-After header the HTTP adapters share (RFC 9110)."""
    from datetime import UTC, datetime, timedelta

    from oohcore.channels import MAX_RETRY_AFTER, retry_after

    now = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
    assert retry_after("120", now) == timedelta(seconds=120)
    assert retry_after("Wed, 02 Dec 2026 03:00:30 GMT", now) == timedelta(seconds=30)
    assert retry_after("Wed, 02 Dec 2026 02:00:00 GMT", now) == timedelta(0)  # in the past
    assert retry_after("86400", now) == MAX_RETRY_AFTER
    assert retry_after("soon", now) is None and retry_after(None, now) is None


def test_tls_verify_names_an_unreadable_ca_file(tmp_path: Path) -> None:
    """An HTTPS adapter's ca_file that is missing or not PEM is a ChannelError naming the file
    and whose certificates it should hold; no ca_file means the system's CAs."""
    from oohcore.channels import ChannelError, tls_verify

    assert tls_verify("webhook", None, "the receiver") is True
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    for path in (bad, tmp_path / "missing.pem"):
        with pytest.raises(
            ChannelError, match=rf"webhook: ca_file {path} cannot be read .* the receiver"
        ):
            tls_verify("webhook", path, "the receiver")


def test_https_endpoint_refuses_clear_text_and_credentials_without_repeating_them() -> None:
    """The one endpoint check the HTTP adapters' configs share: https:// (http:// only to this
    machine), no credentials in the address, the message naming where the key belongs."""
    from oohcore.channels import https_endpoint, is_loopback

    assert https_endpoint("https://crm.example.gov.uk/open311/", key_goes_in="api_key")
    assert https_endpoint("http://127.0.0.1:8080/hook", key_goes_in="secret")
    assert is_loopback("localhost") and is_loopback("[::1]") and not is_loopback("10.0.0.1")
    for bad, expected in [
        ("http://crm.example.gov.uk/", "allowed only to a loopback"),
        ("ftp://crm.example.gov.uk/", "https:// address with a host"),
        ("https://ann:hunter22@crm.example.gov.uk/", "put the key in api_key"),
    ]:
        with pytest.raises(ValueError, match=expected) as caught:
            https_endpoint(bad, key_goes_in="api_key")
        assert "hunter22" not in str(caught.value)
    with pytest.raises(ValueError, match="user, password or query"):
        https_endpoint("https://crm.example.gov.uk/?key=abc", key_goes_in="api_key", query=False)
