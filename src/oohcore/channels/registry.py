"""Building an organisation's channels from its configuration, and describing installed adapters.

An organisation's channel configuration maps each *logical* channel name that its rulesets use
(``sms``, ``email``, ``pager``, ``phone``, ``feed``, ``crm``) to an installed **adapter** and that
adapter's settings, e.g. read from the organisation's ``channels.yaml``::

    channels:
      sms:
        adapter: notify
        api_key: {env: NOTIFY_API_KEY}      # a secret from the environment, not from the file
        template_id: 6b1f0f9e-…
      pager:
        adapter: local
        path: var/pager.jsonl

:func:`build_channels` validates every channel's settings against its adapter's typed
configuration (:class:`~oohcore.channels.ChannelConfig`) and builds the channel objects; every
mistake is reported at once, located (``file:line:col`` when a ``source`` is given, the logical
channel and setting always), with what to do, and nothing is left half-built. Errors name
settings, never their values, so a secret cannot leak through one.

This module reads no file itself (the protocol layer imports nothing of the rulesets): a caller
reading YAML passes the located document, e.g. ``oohcore.rulesets.source.read_yaml(path)``,
as ``source``.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, SecretBytes, SecretStr, ValidationError

from oohcore.channels import (
    Channel,
    ChannelConfigError,
    ChannelError,
    ChannelFactory,
    ChannelInfo,
    load_channels,
)
from oohcore.errors import Problem

__all__ = [
    "AdapterDescription",
    "Located",
    "Locator",
    "build_channels",
    "check_channels",
    "describe_adapters",
]


class Located(Protocol):
    @property
    def file(self) -> str: ...
    @property
    def line(self) -> int: ...
    @property
    def col(self) -> int: ...


class Locator(Protocol):
    """Where a value of the configuration is written (``oohcore.rulesets.source.Source`` is
    one): ``where(path)`` gives the position of the value at ``path``, or of its nearest
    located parent."""

    def where(self, path: Sequence[str | int]) -> Located: ...


def build_channels(
    config: Mapping[str, Any],
    *,
    registry: Mapping[str, ChannelFactory] | None = None,
    source: Locator | None = None,
    within: Sequence[str | int] = (),
    environ: Mapping[str, str] | None = None,
) -> dict[str, Channel]:
    """The channel objects of one organisation, by logical channel name.

    ``config`` maps each logical name to a mapping with ``adapter`` (an installed adapter's
    name, see :func:`~oohcore.channels.load_channels`) and that adapter's settings. A setting
    written ``{env: NAME}`` takes the value of the environment variable ``NAME`` (from
    ``environ``, default ``os.environ``). ``registry`` defaults to every installed adapter;
    ``source`` and ``within`` (the path of ``config`` inside the source document, e.g.
    ``("channels",)``) locate the problems. Raises :class:`ChannelConfigError` listing every
    problem; channels built before a problem was found are closed again.
    """
    factories = dict(registry) if registry is not None else load_channels()
    env = os.environ if environ is None else environ
    where = _Where(source, tuple(within))
    problems: list[Problem] = []
    built: dict[str, Channel] = {}
    if not isinstance(config, Mapping):
        raise ChannelConfigError(
            [where.problem((), "the channel configuration must be a mapping of channel names")]
        )
    for logical, entry in config.items():
        path: tuple[str | int, ...] = (str(logical),)
        if not isinstance(entry, Mapping):
            problems.append(
                where.problem(
                    path,
                    f"channel {logical!r}: expected a mapping with 'adapter' and its settings",
                )
            )
            continue
        adapter = entry.get("adapter")
        if not isinstance(adapter, str) or not adapter:
            problems.append(
                where.problem(
                    path,
                    f"channel {logical!r}: say which adapter carries it "
                    f"('adapter:', one of {_names(factories)})",
                )
            )
            continue
        factory = factories.get(adapter)
        if factory is None:
            close = difflib.get_close_matches(adapter, list(factories), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(
                where.problem(
                    (*path, "adapter"),
                    f"channel {logical!r}: no adapter named {adapter!r} is installed "
                    f"(installed: {_names(factories)}){hint}",
                )
            )
            continue
        in_clear = _secrets_in_clear(entry, factory, logical, path, where)
        settings, missing = _resolve_env(
            {k: v for k, v in entry.items() if k != "adapter"}, env, path, where
        )
        problems.extend(in_clear + missing)
        if missing:
            continue
        if in_clear:
            # the other settings are still checked (every mistake at once), nothing is built
            model = _config_model(factory)
            try:
                if model is not None:
                    model.model_validate(settings)
            except ValidationError as exc:
                problems.extend(_validation_problems(exc, logical, adapter, factory, path, where))
            continue
        try:
            channel = _build(factory, settings)
        except ValidationError as exc:
            problems.extend(_validation_problems(exc, logical, adapter, factory, path, where))
            continue
        except (TypeError, ValueError, OSError, ChannelError) as exc:
            # the message of an adapter's own error, never the settings' values
            problems.append(
                where.problem(
                    path,
                    f"channel {logical!r}: the {adapter!r} adapter cannot start: "
                    f"{type(exc).__name__}: {exc}",
                )
            )
            continue
        if not isinstance(channel, Channel):
            problems.append(
                where.problem(
                    (*path, "adapter"),
                    f"channel {logical!r}: the {adapter!r} adapter made a "
                    f"{type(channel).__name__}, not a channel (it needs name, info, send and "
                    "close): report this to the adapter's authors",
                )
            )
            continue
        built[str(logical)] = channel
    if problems:
        for channel in built.values():
            channel.close()
        raise ChannelConfigError(problems)
    return built


def check_channels(
    channels: Mapping[str, Channel],
    config: Mapping[str, Any],
    *,
    source: Locator | None = None,
    within: Sequence[str | int] = (),
) -> list[Problem]:
    """What the built ``channels`` find wrong in the files their settings name, each located
    twice: at the setting in ``config`` that names it (``file:line:col`` with a ``source``) and
    in the file itself. A channel that reads such files (the S/MIME recipients' certificates of
    an e-mail channel, 7.7) has ``check_certificates()``, raising a :class:`ChannelError` whose
    ``problems`` list each bad file; this is what ``oohcore channels --check`` runs, so a garbage
    or expired certificate is found before the night it is needed."""
    where = _Where(source, tuple(within))
    problems: list[Problem] = []
    for logical, channel in channels.items():
        check = getattr(channel, "check_certificates", None)
        if not callable(check):
            continue
        try:
            check()
        except ChannelError as exc:
            entry = config.get(logical)
            named = entry.get("certificates") if isinstance(entry, Mapping) else None
            for found in getattr(exc, "problems", None) or [Problem("", 0, 0, str(exc))]:
                path: tuple[str | int, ...] = (logical, "certificates_dir")
                if isinstance(named, Mapping):
                    for address, file in named.items():
                        if (
                            str(file) == found.path
                            or Path(str(file)).resolve() == Path(found.path).resolve()
                        ):
                            path = (logical, "certificates", str(address))
                pos = where.problem(path, "")
                problems.append(
                    Problem(
                        pos.path,
                        pos.line,
                        pos.col,
                        f"channel {logical!r}: recipient certificate {found}",
                        found.code,
                    )
                )
    return problems


def _build(factory: ChannelFactory, settings: dict[str, Any]) -> Channel:
    model = _config_model(factory)
    if model is None:
        return factory(**settings)
    config = model.model_validate(settings)
    from_config = getattr(factory, "from_config", None)
    channel: Channel = from_config(config) if callable(from_config) else factory(config)
    return channel


def _config_model(factory: ChannelFactory) -> type[BaseModel] | None:
    info = getattr(factory, "info", None)
    model = info.config if isinstance(info, ChannelInfo) else None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _secret_settings(factory: ChannelFactory) -> frozenset[str]:
    """The settings of the adapter's configuration that are secrets (``SecretStr`` or
    ``SecretBytes``, optional or not)."""
    model = _config_model(factory)
    if model is None:
        return frozenset()
    secret_types = (SecretStr, SecretBytes)

    def is_secret(annotation: object) -> bool:
        if isinstance(annotation, type) and issubclass(annotation, secret_types):
            return True
        return any(is_secret(arg) for arg in typing.get_args(annotation))

    return frozenset(
        name for name, info in model.model_fields.items() if is_secret(info.annotation)
    )


def _secrets_in_clear(
    entry: Mapping[str, Any],
    factory: ChannelFactory,
    logical: object,
    path: tuple[str | int, ...],
    where: _Where,
) -> list[Problem]:
    """A secret written in the file itself is refused (docs/adapters.md: secrets come from the
    environment, never from the file, which is copied, reviewed and kept in version control);
    the problem says how to pass it, and never repeats it."""
    problems = []
    for key in sorted(_secret_settings(factory)):
        if key not in entry or entry[key] is None:
            continue
        value = entry[key]
        if isinstance(value, Mapping) and set(value) == {"env"}:
            continue
        name = f"{str(logical).upper()}_{key.upper()}".replace("-", "_")
        problems.append(
            where.problem(
                (*path, key),
                f"channel {logical!r}: setting {key!r} is a secret and is never read from the "
                f"file: write '{key}: {{env: {name}}}' and set the environment variable {name} "
                "where the service runs (then remove the secret from the file and its history, "
                "and change it: it has been written down)",
            )
        )
    return problems


def _resolve_env(
    settings: dict[str, Any], env: Mapping[str, str], path: tuple[str | int, ...], where: _Where
) -> tuple[dict[str, Any], list[Problem]]:
    problems: list[Problem] = []
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, Mapping) and set(value) == {"env"}:
            name = value["env"]
            if not isinstance(name, str) or name not in env:
                problems.append(
                    where.problem(
                        (*path, key, "env"),
                        f"channel {path[0]!r}: setting {key!r} is to come from the environment "
                        f"variable {name!r}, which is not set: set it where the service runs",
                    )
                )
                continue
            value = env[name]
        out[key] = value
    return out, problems


def _validation_problems(
    exc: ValidationError,
    logical: str,
    adapter: str,
    factory: ChannelFactory,
    path: tuple[str | int, ...],
    where: _Where,
) -> list[Problem]:
    model = _config_model(factory)
    known = ", ".join(sorted(model.model_fields)) if model is not None else ""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = tuple(error["loc"])
        setting = ".".join(str(part) for part in loc) or "(the settings)"
        if error["type"] == "extra_forbidden":
            message = (
                f"channel {logical!r}: {adapter!r} has no setting {setting!r} "
                f"(its settings: {known})"
            )
        elif error["type"] == "missing":
            message = f"channel {logical!r}: {adapter!r} needs the setting {setting!r}"
            loc = ()
        else:
            message = f"channel {logical!r}: setting {setting!r}: {error['msg']}"
        problems.append(where.problem((*path, *loc), message))
    return problems


def _names(factories: Mapping[str, ChannelFactory]) -> str:
    return ", ".join(sorted(factories)) or "none"


@dataclass(frozen=True, slots=True)
class _Where:
    source: Locator | None
    within: tuple[str | int, ...]

    def problem(self, path: Sequence[str | int], message: str) -> Problem:
        if self.source is None:
            return Problem("<channels>", 0, 0, message, "channel-config")
        pos = self.source.where((*self.within, *path))
        return Problem(pos.file, pos.line, pos.col, message, "channel-config")


# -- describing installed adapters (``oohcore channels``) ------------------------------------


@dataclass(frozen=True, slots=True)
class AdapterDescription:
    """What an installed adapter declares about itself."""

    name: str
    factory: str  # module:qualname
    info: ChannelInfo | None
    requires: Mapping[str, bool]  # each required module, and whether it imports here

    def as_dict(self) -> dict[str, Any]:
        info = self.info
        model = info.config if info is not None else None
        schema = (
            model.model_json_schema()
            if isinstance(model, type) and issubclass(model, BaseModel)
            else None
        )
        return {
            "name": self.name,
            "factory": self.factory,
            "carries": sorted(info.carries) if info else None,
            "contact_field": info.contact_field if info else None,
            "max_body": info.max_body if info else None,
            "max_subject": info.max_subject if info else None,
            "rate_limit": info.rate_limit if info else None,
            "receipts": info.receipts if info else None,
            "send_timeout_seconds": info.send_timeout.total_seconds() if info else None,
            "requires": dict(self.requires),
            "config": schema,
        }


def describe_adapters(
    registry: Mapping[str, ChannelFactory] | None = None,
) -> tuple[list[AdapterDescription], list[str]]:
    """Every installed adapter (or those of ``registry``), by name, and the problems of the
    entry points that could not be loaded."""
    problems: list[str] = []
    factories = dict(registry) if registry is not None else load_channels(problems=problems)
    out = []
    for name in sorted(factories):
        factory = factories[name]
        info = getattr(factory, "info", None)
        info = info if isinstance(info, ChannelInfo) else None
        requires = {module: _importable(module) for module in (info.requires if info else ())}
        where = f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', '?')}"
        out.append(AdapterDescription(name, where, info, requires))
    return out, problems


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
