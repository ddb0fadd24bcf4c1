"""A secret written in channels.yaml itself is refused, located, saying how to pass it, and
never repeated (docs/adapters.md: secrets come from the environment, never from the file)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretBytes, SecretStr

from oohcore.channels import (
    ChannelConfig,
    ChannelConfigError,
    ChannelInfo,
    DeliveryResult,
    OutboundMessage,
    build_channels,
)
from oohcore.cli import main
from oohcore.rulesets.source import read_yaml


class VaultConfig(ChannelConfig):
    url: str
    api_key: SecretStr
    signing_key: SecretBytes | None = None


class Vault:
    name = "vault"
    info = ChannelInfo(carries=frozenset({"sms"}), contact_field="phone", config=VaultConfig)

    def __init__(self, config: VaultConfig) -> None:
        self.config = config

    def send(self, message: OutboundMessage) -> DeliveryResult:
        return DeliveryResult.sent()

    def close(self) -> None:
        pass


def test_a_secret_in_the_file_is_refused_where_it_is_written(tmp_path: Path) -> None:
    path = tmp_path / "channels.yaml"
    path.write_text(
        "channels:\n"
        "  sms:\n"
        "    adapter: vault\n"
        "    url: https://sms.example.gov.uk\n"
        "    api_key: hunter2-in-the-file\n"
        "    signing_key: {env: SMS_SIGNING}\n"
    )
    source = read_yaml(path)
    with pytest.raises(ChannelConfigError) as caught:
        build_channels(
            source.data["channels"],
            registry={"vault": Vault},
            source=source,
            within=("channels",),
            environ={"SMS_SIGNING": "from-the-environment"},
        )
    (problem,) = caught.value.problems
    assert str(problem).startswith(
        f"{path}:5:14: channel 'sms': setting 'api_key' is a secret and is never read from the "
        "file: write 'api_key: {env: SMS_API_KEY}' and set the environment variable SMS_API_KEY"
    )
    assert "hunter2" not in str(caught.value)
    built = build_channels(
        {"sms": {"adapter": "vault", "url": "https://x.example", "api_key": {"env": "K"}}},
        registry={"vault": Vault},
        environ={"K": "from-the-environment"},
    )
    assert built["sms"].config.api_key.get_secret_value() == "from-the-environment"  # type: ignore[attr-defined]


def test_oohcore_channels_check_refuses_a_real_adapters_key_in_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "channels.yaml"
    path.write_text(
        "channels:\n"
        "  crm:\n"
        "    adapter: open311\n"
        "    endpoint: https://crm.example-borough.gov.uk/open311/v2/\n"
        "    api_key: 5f0c-plaintext-key\n"
    )
    assert main(["channels", "--check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:5:14: channel 'crm': setting 'api_key' is a secret" in err
    assert "{env: CRM_API_KEY}" in err and "5f0c" not in err and "Traceback" not in err
