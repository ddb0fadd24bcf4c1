"""The Open311 channel's configuration: one CRM endpoint per organisation (7.9)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import ConfigDict, Field, SecretStr, field_validator

from oohcore.channels import ChannelConfig, https_endpoint

__all__ = ["Open311Config"]


class Open311Config(ChannelConfig):
    """How to reach one council CRM over Open311 GeoReport v2.

    ``recipient`` of a message names the service: a key of ``service_codes`` (an alias such as
    ``housing-repairs``) or the Open311 ``service_code`` itself. ``attributes`` maps attribute
    codes of the service definition to the message's case fields (``{"hazard": "details"}``);
    ``attribute[uprn]`` is always sent when the message knows the UPRN (7.9, 7.11).
    """

    # a value that fails validation may be a secret: errors never repeat it
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    endpoint: str = Field(
        description="the GeoReport v2 base URL, e.g. https://crm.example.gov.uk/open311/v2/ "
        "(http:// only to loopback)"
    )
    api_key: SecretStr | None = Field(default=None, description="the CRM's API key (a secret)")
    jurisdiction_id: str | None = Field(default=None, description="sent when the CRM hosts many")
    service_codes: dict[str, str] = Field(
        default_factory=dict, description="recipient alias → Open311 service_code"
    )
    attributes: dict[str, str] = Field(
        default_factory=dict, description="attribute code → case field name"
    )
    key_attribute: str | None = Field(
        default=None,
        description="an attribute code the CRM defines to hold our idempotency key (then the "
        "CRM can tell a repeat); none by default",
    )
    check_definitions: bool = Field(
        default=True,
        description="read services.json and services/{code}.json (cached) and refuse a request "
        "that lacks a required attribute before posting it",
    )
    token_polls: int = Field(default=5, ge=0, le=100, description="GET tokens/{token}.json tries")
    token_poll_interval: timedelta = Field(default=timedelta(seconds=1))
    ca_file: Path | None = Field(default=None, description="CA bundle that signs the CRM")
    state_path: Path | None = Field(
        default=None, description="SQLite file of the keys already sent (None: in memory)"
    )
    send_timeout: timedelta = Field(default=timedelta(seconds=20))

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        https_endpoint(value, key_goes_in="api_key", query=False)
        return value if value.endswith("/") else value + "/"

    @field_validator("send_timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= timedelta(minutes=2):
            raise ValueError("must be more than 0 and at most 2 minutes (the runner's lease)")
        return value

    @field_validator("token_poll_interval")
    @classmethod
    def _interval(cls, value: timedelta) -> timedelta:
        if value < timedelta(0) or value > timedelta(seconds=30):
            raise ValueError("must be between 0 and 30 seconds")
        return value
