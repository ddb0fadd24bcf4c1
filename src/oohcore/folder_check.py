"""Checking every file an organisation folder holds, as ``Engine.open`` will read it.

``oohcore validate`` checks the rulesets (``organisation.yaml``, ``options/``, ``directory.yaml``)
through :func:`oohcore.rulesets.loader.validate`; this module adds the files beside them that
the engine also reads when it opens — ``rota.yaml`` (:mod:`oohcore.rota`), ``gazetteer.csv``
(:mod:`oohcore.search.gazetteer`, 7.11) — and any call detail records (``*.csv``, 11.6.1) the folder
keeps. Each problem is the same located :class:`~oohcore.errors.Problem` ``Engine.open`` would
raise, so a folder that validates also opens. A file oohcore does not read is reported as a
warning (a typo such as ``rota.yml`` would otherwise be silently ignored).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from oohcore import rota
from oohcore.cdr_csv import check_cdr_file
from oohcore.errors import OohcoreError, Problem, RulesetError
from oohcore.procedure.scenarios import SCENARIOS_DIR
from oohcore.search.gazetteer import Gazetteer, GazetteerError

__all__ = ["check_folder_files", "check_rota"]

GAZETTEER_FILE = "gazetteer.csv"
CHANNELS_FILE = "channels.yaml"  # checked by ``oohcore channels --check`` (builds the adapters)
_RULESET_FILES = frozenset({"organisation.yaml", "catalogue.yaml", "directory.yaml"})
_IGNORED = frozenset({"README.md", "README.txt", "README", ".gitkeep", ".DS_Store"})


def check_rota(
    path: Path, *, timezone: str, roles: Sequence[str] | Mapping[str, object]
) -> list[Problem]:
    """The problems of one ``rota.yaml`` (empty when it is valid).

    Calls :func:`oohcore.rota.check_rota_file` where the rota package provides it, and reads the
    file with :class:`oohcore.rota.RotaFile` otherwise: the same check ``Engine.open`` makes.
    """
    check = getattr(rota, "check_rota_file", None)
    try:
        if check is not None:
            found = check(path, timezone=timezone, roles=roles)
            return list(found or [])
        rota.RotaFile().add("validate", path, timezone=timezone, roles=roles)
    except RulesetError as exc:
        return list(exc.problems)
    except OohcoreError as exc:
        return [Problem(str(path), 0, 0, str(exc), "rota")]
    return []


def check_folder_files(folder: Path, *, catalogue: Path) -> list[Problem]:
    """The problems of the files beside the rulesets in one organisation (or catalogue) folder."""
    from oohcore.rulesets.compiler import timezone_problem
    from oohcore.rulesets.loader import OPTIONS_DIR, _read_header, _Session

    problems: list[Problem] = []
    is_org = (folder / "organisation.yaml").is_file()
    for path in sorted(folder.iterdir()):
        name = path.name
        if name in _RULESET_FILES or name in _IGNORED or name == CHANNELS_FILE:
            continue
        if path.is_dir():
            if name == SCENARIOS_DIR:
                problems.extend(_scenario_problems(folder, catalogue))
            elif name != OPTIONS_DIR and not name.startswith("."):
                problems.append(_unknown(path, "a folder"))
            continue
        if name == rota.ROTA_FILE and is_org:
            header = _read_header(_Session(catalogue), folder)
            timezone = getattr(header.model, "timezone", None)
            if not isinstance(timezone, str) or timezone_problem(timezone) is not None:
                continue  # organisation.yaml's own problems are reported by the ruleset check
            found = check_rota(path, timezone=timezone, roles=header.roles or {})
            problems.extend(found)
            if not found:
                problems.extend(_nobody_holds(folder, catalogue))
        elif name == GAZETTEER_FILE:
            try:
                Gazetteer.from_csv(path)
            except GazetteerError as exc:
                problems.extend(exc.problems)
        elif path.suffix.lower() == ".csv":
            problems.extend(check_cdr_file(path))  # read as a stream, never held whole
        elif path.suffix.lower() in (".yml", ".yaml") and name != rota.ROTA_FILE:
            problems.append(_unknown(path, "a YAML file"))
        elif not name.startswith("."):
            problems.append(_unknown(path, "a file"))
    return problems


def _nobody_holds(folder: Path, catalogue: Path) -> list[Problem]:
    """An escalation ending at a role nobody holds at every moment in ``rota.yaml`` (5.3.2,
    audit item 9), without a store: a warning, since the store's living rota may hold it (the
    file only seeds it); ``--strict`` and ``oohcore lint`` make it an error."""
    from oohcore.procedure.lint import nobody_holds

    return [
        Problem(f.path, f.line, f.col, str(f).split(": ", 1)[1], f.kind, "warning")
        for f in nobody_holds(folder, catalogue=catalogue)
        if f.explained is None
    ]


def _scenario_problems(folder: Path, catalogue: Path) -> list[Problem]:
    """The scenario files' own problems (5.3.1); a folder whose rulesets do not load has its
    problems reported by the ruleset check instead."""
    from oohcore.procedure.scenarios import check_path

    try:
        return check_path(folder, catalogue=catalogue)
    except RulesetError:
        return []


def _unknown(path: Path, what: str) -> Problem:
    return Problem(
        str(path),
        0,
        0,
        f"{what} oohcore does not read: an organisation folder holds organisation.yaml, "
        f"options/, scenarios/, directory.yaml, rota.yaml, gazetteer.csv, channels.yaml and "
        f"call detail records (*.csv); check the name, or move it elsewhere",
        "unknown-file",
        "warning",
    )


def check_paths(
    paths: Sequence[str | Path], *, catalogue: str | Path | None = None
) -> list[Problem]:
    """:func:`check_folder_files` for every ruleset folder among (or under) ``paths``; a single
    file given is checked by itself when it is one of the files this module reads."""
    from oohcore.rulesets.loader import _ruleset_folders, default_catalogue

    base = Path(catalogue) if catalogue else default_catalogue()
    out: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for folder in _ruleset_folders(path):
                out.extend(check_folder_files(folder, catalogue=base))
        elif (
            path.is_file()
            and path.name in (rota.ROTA_FILE, GAZETTEER_FILE)
            and (path.parent / "organisation.yaml").is_file()
        ):  # outside an organisation folder the ruleset check says a folder is expected
            out.extend(
                p
                for p in check_folder_files(path.parent, catalogue=base)
                if Path(p.path).name == path.name
            )
    return out
