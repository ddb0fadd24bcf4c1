"""One-time signed acknowledgement links (issue 8 item 6, 5.3.2).

A link lets an alerted officer acknowledge (or decline) a referral from the alert itself. The
host serves the URL and passes the token it carries to
:meth:`~oohcore.engine.facade.Engine.follow_link`. The token is
``<payload>.<signature>``, both base64url: the payload names the organisation, referral, run,
officer, what the link does (``ack`` or ``decline``), its expiry and a random nonce; the
signature is HMAC-SHA256 over the payload with the organisation's key (the environment variable
named by ``ack_links.key_env`` in organisation.yaml: the key is never in the ruleset).

A token is refused (:class:`LinkRefused`) when it is not one (not ASCII text of at most
:data:`MAX_TOKEN` characters, a payload that is not the JSON object a link carries: whatever an
opened URL holds, :class:`LinkRefused` is the only answer), when its signature does not verify,
when it has expired, or when it was used before: its nonce is recorded in the event of its use, and a
second use of the same nonce is refused (single use). A link of an earlier run of the referral
(a restarted escalation) is stale and refused too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from oohcore.engine import inputs
from oohcore.engine.errors import EngineError, InvalidArgument

__all__ = ["ACTIONS", "LinkRefused", "LinkToken", "sign", "verify"]

ACTIONS = ("ack", "decline")
MAX_TOKEN = 2048  # a token longer than this is refused before anything is decoded
_FIELDS: dict[str, type] = {"o": str, "r": str, "u": str, "b": str, "a": str, "e": int, "n": str}
_REFUSED = "not an oohcore acknowledgement link"


class LinkRefused(EngineError):
    """The link is not valid: bad signature, expired, used before, or of another run."""


@dataclass(frozen=True, slots=True)
class LinkToken:
    organisation_id: str
    referral_id: str
    run_id: str
    officer: str
    action: str
    expires_at: datetime
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest())


def _fields(body: object) -> dict[str, str | int]:
    """The link's fields, each of the type :func:`sign` writes (text, the expiry an integer)."""
    if not isinstance(body, dict) or set(body) != set(_FIELDS):
        raise ValueError("not a link's payload")
    for name, kind in _FIELDS.items():
        value = body[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(f"field {name} is not {kind.__name__}")
    return body


def sign(key: bytes, token: LinkToken) -> str:
    """The signed token for ``token`` (a new nonce is the caller's: see :func:`new_token`)."""
    if token.action not in ACTIONS:
        raise EngineError(f"a link does {' or '.join(ACTIONS)}, not {token.action!r}")
    body = {
        "o": token.organisation_id,
        "r": token.referral_id,
        "u": token.run_id,
        "b": token.officer,
        "a": token.action,
        "e": int(token.expires_at.timestamp()),
        "n": token.nonce,
    }
    payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    return f"{payload}.{_mac(key, payload)}"


def checked_arguments(officer: object, action: object) -> tuple[str, str]:
    """``ack_link``'s ``officer`` and ``action``, or :class:`InvalidArgument` naming the one at
    fault: the officer is text naming someone (a link for nobody, or for ``None``, would
    record an acknowledgement by nobody, 5.3.2), the action one of :data:`ACTIONS`."""
    name = inputs.name("officer", officer) or ""
    if not name.strip():
        raise InvalidArgument("officer", "a link is for a named officer; the name is empty")
    if not name.isprintable():
        raise InvalidArgument("officer", "contains a control character")
    if not isinstance(action, str) or action not in ACTIONS:
        shown = action if isinstance(action, str) else type(action).__name__
        raise InvalidArgument("action", f"a link does {' or '.join(ACTIONS)}, not {shown!r:.40}")
    return name, action


def new_nonce() -> str:
    return secrets.token_urlsafe(12)


def organisation_of(token: str) -> str:
    """The organisation a token claims (unverified: to choose the key to verify it with)."""
    return _decode(token)[1].organisation_id


def _decode(token: object) -> tuple[str, LinkToken, str]:
    if (
        not isinstance(token, str)
        or len(token) > MAX_TOKEN
        or not token.isascii()
        or token.count(".") != 1
    ):
        raise LinkRefused(_REFUSED)
    payload, mac = token.split(".")
    try:
        body = _fields(json.loads(_unb64(payload)))
        parsed = LinkToken(
            organisation_id=str(body["o"]),
            referral_id=str(body["r"]),
            run_id=str(body["u"]),
            officer=str(body["b"]),
            action=str(body["a"]),
            expires_at=datetime.fromtimestamp(int(body["e"]), UTC),
            nonce=str(body["n"]),
        )
    except (ValueError, KeyError, TypeError, OverflowError, OSError, RecursionError):
        # RecursionError: a payload of deeply nested JSON arrays, before any signature check
        raise LinkRefused(_REFUSED) from None
    return payload, parsed, mac


def verify(key: bytes, token: str, now: datetime) -> LinkToken:
    """The token's content if its signature verifies with ``key`` and it has not expired
    (whether it was used before is the engine's check, against the store)."""
    payload, parsed, mac = _decode(token)
    # both sides are ASCII (``_decode`` refused anything else): compare_digest takes them
    if not hmac.compare_digest(_mac(key, payload).encode(), mac.encode()):
        raise LinkRefused("the link's signature does not verify")
    if parsed.action not in ACTIONS:
        raise LinkRefused(_REFUSED)
    if now >= parsed.expires_at:
        raise LinkRefused(f"the link expired at {parsed.expires_at.isoformat()}")
    return parsed
