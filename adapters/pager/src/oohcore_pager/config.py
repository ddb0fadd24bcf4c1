"""What both pager channels share in their configuration: the per-pager rate limit, the state
file, and turning a host's configuration mapping into a typed model with readable errors."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from oohcore.channels import ChannelError

__all__ = ["PageRateLimit", "PagerConfigError", "parse_config"]


class PagerConfigError(ChannelError):
    """A pager channel's configuration is not valid (the message names each field)."""


class PageRateLimit(BaseModel):
    """At most ``pages`` pages to one pager id within any ``per`` (a sliding window).

    A page over the limit is not dropped: ``send`` answers ``retry`` with ``retry_after`` set to
    when the oldest page in the window leaves it, and the outbox sends it then.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    pages: int = Field(default=5, ge=1, le=10_000)
    per: timedelta = Field(default=timedelta(minutes=1))

    @field_validator("per")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration (seconds, or ISO 8601 such as PT1M)")
        return value


M = TypeVar("M", bound=BaseModel)


def parse_config(model: type[M], data: M | Mapping[str, Any] | None, *, what: str) -> M:
    """``data`` as a ``model``; a mistake raises :class:`PagerConfigError` naming each field
    and what is wrong with it, without echoing any value (a value may be a secret)."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(dict(data or {}))
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False, include_context=False):
            where = ".".join(str(part) for part in error["loc"]) or "(the configuration)"
            problems.append(f"  - {where}: {error['msg']}")
        raise PagerConfigError(
            f"{what} configuration is not valid ({len(problems)} problem(s)):\n"
            + "\n".join(problems)
            + f"\nCorrect these fields in the {what} channel's configuration; nothing was sent."
        ) from None
    except (TypeError, ValueError) as exc:
        raise PagerConfigError(f"{what} configuration is not valid: {exc}") from None
