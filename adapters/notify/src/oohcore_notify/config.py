"""The Notify channel's configuration: one per organisation (each council has its own key)."""

from __future__ import annotations

import re
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = ["NotifyConfig"]

# {key name}-{service id}-{secret}: the last two are UUIDs (the name may hold hyphens itself)
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_API_KEY = re.compile(rf"^(?P<name>.+)-(?P<service>{_UUID})-(?P<secret>{_UUID})$")


class NotifyConfig(BaseModel):
    """How one organisation's GOV.UK Notify service is reached.

    ``api_key`` is the key as Notify shows it (``{name}-{service id}-{secret}``); it is a
    secret and never appears in a repr, a log line or an error. ``sms_template_id`` /
    ``email_template_id`` name the templates; the SMS template's text is given in
    ``sms_template`` (``((body))`` where the composed text goes; fixed text around it counts)
    so that fragments are counted on what the phone receives; ``sms_prefix`` is the service
    name when the Notify service is set to put it in front of every text. ``max_fragments``
    is the SMS budget a referral text is composed to fit (5.2.5).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    api_key: SecretStr
    base_url: str = "https://api.notifications.service.gov.uk"
    sms_template_id: UUID | None = None
    email_template_id: UUID | None = None
    sms_sender_id: UUID | None = None
    email_reply_to_id: UUID | None = None
    sms_template: str = "((body))"
    sms_prefix: str | None = None
    max_fragments: int = Field(default=3, ge=1, le=20)
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    rate_limit: float = Field(default=50.0, gt=0)  # Notify: 3,000 messages a minute per key
    reconcile: Literal["after-doubt", "always"] = "after-doubt"
    callback_token: SecretStr | None = None  # the bearer token Notify's callbacks carry

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+/?$", value):
            raise ValueError(
                "base_url must be a scheme and host only, such as "
                "'https://api.notifications.service.gov.uk' (the client drops any path)"
            )
        return value.rstrip("/")

    @field_validator("sms_template")
    @classmethod
    def _sms_template(cls, value: str) -> str:
        if "((body))" not in value:
            raise ValueError("sms_template must contain the placeholder ((body))")
        return value

    @model_validator(mode="after")
    def _key_shape(self) -> NotifyConfig:
        if _API_KEY.match(self.api_key.get_secret_value()) is None:
            raise ValueError(
                "api_key is not a GOV.UK Notify API key: it should be the key's name followed by "
                "two UUIDs ({name}-{service id}-{secret}), as Notify shows it when it is created"
            )
        if self.sms_template_id is None and self.email_template_id is None:
            raise ValueError("give sms_template_id, email_template_id or both")
        if self.callback_token is not None and len(self.callback_token.get_secret_value()) < 10:
            raise ValueError("callback_token must be at least 10 characters (Notify's minimum)")
        return self

    @property
    def service_id(self) -> str:
        """The Notify service the key belongs to (not a secret)."""
        match = _API_KEY.match(self.api_key.get_secret_value())
        assert match is not None  # checked when the model was made
        return match.group("service")
