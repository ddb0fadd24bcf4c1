"""The hostile-input corpus: rulesets written as a hostile or careless user would (issue 7).

Each :class:`Case` is a copy of the test borough (tests/rulesets/borough) with some files
added or replaced; ``tests/test_hostile_rulesets.py`` runs ``oohcore validate`` on each and
requires exit 0 or 1, every line a ``path:line:col:`` message, no traceback, no hang and at
most 200 MB of memory. ``expect`` is a phrase the output must hold (the located message the
case is about), when the case is about one. ``dangerous`` cases (a hang or a large
allocation if a limit were missing) run in a subprocess with a timeout and a memory measure;
the others run in-process.

Defect numbers are those of issue 7; the YAML bombs, deep nesting, duplicate keys and tags of
its summary are kept covered here too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

TESTS = Path(__file__).parents[1]
BOROUGH = TESTS / "rulesets" / "borough"
CATALOGUE = TESTS / "rulesets" / "catalogue"
HELPLINE = (BOROUGH / "options" / "helpline.yaml").read_text(encoding="utf-8")

Setup = Callable[[Path], None]  # given the borough copy's folder, makes the case's oddities


@dataclass(frozen=True)
class Case:
    name: str
    files: dict[str, bytes | str] = field(default_factory=dict)  # relative path -> content
    setup: Setup | None = None
    expect: str | None = None
    dangerous: bool = False
    target: str = "."  # what is validated, relative to the borough copy


def build(case: Case, where: Path) -> Path:
    """Make the case's borough under ``where``; returns the path to validate."""
    folder = where / "borough"
    shutil.copytree(BOROUGH, folder, symlinks=True)
    for rel, content in case.files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    if case.setup is not None:
        case.setup(folder)
    return folder / case.target


def _helpline(**replace: str) -> str:
    text = HELPLINE
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def _option(extra: str, *, name: str = "hostile") -> str:
    """A stand-alone option file ``name`` (the helpline with another id) plus ``extra``."""
    return _helpline(**{"id: helpline": f"id: {name}"}) + extra


def _link(rel: str, to: str) -> Setup:
    def setup(folder: Path) -> None:
        os.symlink(to, folder / rel)

    return setup


def _fifo(folder: Path) -> None:
    os.mkfifo(folder / "options" / "fifo.yaml")


def _loop(folder: Path) -> None:
    os.symlink("loop-b.yaml", folder / "options" / "loop-a.yaml")
    os.symlink("loop-a.yaml", folder / "options" / "loop-b.yaml")


def _folder_named_yaml(folder: Path) -> None:
    (folder / "options" / "folder.yaml").mkdir()


def _odd_name(folder: Path) -> None:
    """A file name that is not UTF-8 (printed back in every message about the file)."""
    with open(os.path.join(os.fsencode(folder / "options"), b"odd-\xff.yaml"), "wb") as f:
        f.write(b"id: odd\n")


def _many_files(folder: Path) -> None:
    for i in range(1_200):
        (folder / "options" / f"o{i}.yaml").write_text(f"id: o{i}\n")


def _extends_chain(n: int) -> Setup:
    """``n`` files in one ``extends`` chain (8: ~1,000 gave a RecursionError)."""

    def setup(folder: Path) -> None:
        shared = folder / "shared"
        shared.mkdir()
        (shared / "c0.yaml").write_text(_option("", name="c0"), encoding="utf-8")
        for i in range(1, n):
            (shared / f"c{i}.yaml").write_text(f"extends: c{i - 1}.yaml\nid: c{i}\n")
        (folder / "options" / "chained.yaml").write_text(
            f"extends: ../shared/c{n - 1}.yaml\nid: chained\n", encoding="utf-8"
        )

    return setup


def _alias_chain(n: int) -> str:
    """``n`` anchors, each a list holding the one before (8: ~675 gave a RecursionError)."""
    lines = ["id: aliases", "x0: &a0 [1]"]
    lines += [f"x{i}: &a{i} [*a{i - 1}]" for i in range(1, n)]
    return "\n".join(lines) + "\n"


def _bomb() -> str:
    """The billion laughs: nine levels of ten aliases each."""
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, 10):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def _many_rules(n: int) -> str:
    """``n`` rules keyed on one choice (9: 3,010 rules took 196 s to validate)."""
    options = "".join(f"        k{i}: Kind {i}\n" for i in range(n))
    rules = "".join(
        f'    - when: kind == "k{i}" and (urgent or minutes > {i % 50})\n'
        "      then: give-advice\n"
        + ("    - when: minutes > 400\n      then: give-advice\n" if i % 10 == 0 else "")
        for i in range(n)
    )
    return (
        "id: many-rules\nname: Many rules\nstandard: bronze\n"
        "script:\n  questions:\n"
        "    - field: kind\n      ask: Which?\n      type: choice\n      options:\n"
        f"{options}"
        "    - field: urgent\n      ask: Urgent?\n      type: yes_no\n"
        "    - field: minutes\n      ask: Minutes?\n      type: number\n"
        "decision:\n  rules:\n"
        f"{rules}"
        "  default: give-advice\n"
        "actions:\n  give-advice:\n    kind: resolve\n    information: Advice.\n"
    )


BIG_NUMBER = "1" + "0" * 400 + ".0"  # a float literal too large for a float: inf

CASES: list[Case] = [
    # -- 3: reading files outside the ruleset ------------------------------------------------
    Case(
        "extends-etc-passwd",
        {"options/hostile.yaml": "extends: /etc/passwd\nid: hostile\n"},
        expect="outside the ruleset folder",
    ),
    Case(
        "extends-climbs-out",
        {"options/hostile.yaml": "extends: ../../../../../../../../etc/hostname\nid: hostile\n"},
        expect="outside the ruleset folder",
    ),
    Case(
        "extends-a-link-out",
        {"options/hostile.yaml": "extends: ../shared/base.yaml\nid: hostile\n"},
        setup=lambda f: (f / "shared").mkdir() or os.symlink("/etc/passwd", f / "shared/base.yaml"),
        expect="outside the ruleset folder",
    ),
    Case(
        "option-is-a-link-out",
        setup=_link("options/passwd.yaml", "/etc/passwd"),
        expect="links out of them are refused",
    ),
    Case(
        "directory-is-a-link-out",
        setup=lambda f: (
            (f / "directory.yaml").unlink() or os.symlink("/etc/passwd", f / "directory.yaml")
        ),
        expect="links out of them are refused",
    ),
    Case(
        "catalogue-prefix-climbs-out",
        {"options/hostile.yaml": "extends: catalogue:../../etc/passwd\nid: hostile\n"},
        expect="not a catalogue service option id",
    ),
    Case(
        "extends-a-whole-text-file",
        {
            "shared/notes.yaml": "secret line one " * 200 + "\n",
            "options/hostile.yaml": "extends: ../shared/notes.yaml\nid: hostile\n",
        },
        expect="expected a mapping of keys to values",
    ),
    # -- 4: numbers and durations beyond their bounds ------------------------------------------
    Case(
        "condition-number-inf",
        {
            "options/hostile.yaml": _option("").replace(
                'topic == "lone_worker"\n      then',
                f"minutes == {BIG_NUMBER}\n      then: give-advice\n    - when: minutes == 2{BIG_NUMBER}\n"
                f"      then: give-advice\n    - when: minutes == 3{BIG_NUMBER}\n      then",
            )
        },
        expect="is too large",
    ),
    Case(
        "yaml-float-inf",
        {"options/hostile.yaml": _option("").replace("max: 480", "max: 1.0e+999")},
        expect="is too large",
    ),
    Case(
        "yaml-float-nan",
        {"options/hostile.yaml": _option("").replace("min: 1", "min: .nan")},
        expect="is not a number",
    ),
    Case(
        "yaml-huge-int",
        {"options/hostile.yaml": _option("").replace("max: 480", "max: " + "9" * 5000)},
        expect="is too large",
    ),
    Case(
        "duration-overflows",
        {"options/hostile.yaml": _option("").replace("wait: 5m", "wait: 900000000h")},
        expect="longest duration allowed",
    ),
    Case(
        "duration-thousands-of-digits",
        {"options/hostile.yaml": _option("").replace("wait: 5m", "wait: " + "9" * 5000 + "h")},
        expect="longest duration allowed",
    ),
    Case(
        "acknowledge-within-overflows",
        {
            "options/hostile.yaml": _option("").replace(
                "    rota_role: duty-officer\n    channels: [phone]\n",
                "    rota_role: duty-officer\n    channels: [phone]\n    acknowledge_within: 900000000h\n",
            )
        },
        expect="longest duration allowed",
    ),
    # -- 5: unbounded work ---------------------------------------------------------------------
    Case(
        "backtracking-pattern",
        {
            "options/hostile.yaml": _option("").replace(
                "      essential: true\n    - field: minutes",
                "      essential: true\n      pattern: '(\\w+\\s?)+$'\n    - field: minutes",
            )
        },
    ),
    Case(
        "backreference-pattern",
        {
            "options/hostile.yaml": _option("").replace(
                "      essential: true\n    - field: minutes",
                "      essential: true\n      pattern: '(a+)\\1'\n    - field: minutes",
            )
        },
        expect="linear time",
    ),
    Case(
        "max-length-over-the-cap",
        {
            "options/hostile.yaml": _option("").replace(
                "      essential: true\n    - field: minutes",
                "      essential: true\n      max_length: 100000000\n    - field: minutes",
            )
        },
        expect="out of range",
    ),
    # -- 8: tracebacks and hangs ---------------------------------------------------------------
    Case("alias-chain", {"options/aliases.yaml": _alias_chain(675)}, expect="nested more than"),
    Case("extends-chain", setup=_extends_chain(1000), expect="chains more than", dangerous=True),
    Case(
        "extends-nul",
        {"options/hostile.yaml": 'extends: "base\\0.yaml"\nid: hostile\n'},
        expect="NUL",
    ),
    Case(
        "extends-over-long",
        {"options/hostile.yaml": "extends: " + "a/" * 3000 + "b.yaml\nid: hostile\n"},
        expect="longer than",
    ),
    Case(
        "extends-over-long-part",
        {"options/hostile.yaml": "extends: " + "a" * 300 + ".yaml\nid: hostile\n"},
        expect="longer than 255",
    ),
    Case("symlink-loop", setup=_loop, expect="round in a loop"),
    Case(
        "extends-a-symlink-loop",
        {"options/hostile.yaml": "extends: loop-a.yaml\nid: hostile\n"},
        setup=_loop,
    ),
    Case(
        "option-is-dev-zero",
        setup=_link("options/zero.yaml", "/dev/zero"),
        expect="links out of them are refused",
        dangerous=True,
    ),
    Case(
        "option-is-a-fifo",
        setup=_fifo,
        expect="not a regular file",
        dangerous=True,
    ),
    Case(
        "extends-a-fifo",
        {"options/hostile.yaml": "extends: fifo.yaml\nid: hostile\n"},
        setup=_fifo,
        dangerous=True,
    ),
    Case("option-is-a-folder", setup=_folder_named_yaml, expect="not a regular file"),
    Case("too-many-option-files", setup=_many_files, expect="at most 1,000 are read"),
    Case("file-name-not-utf8", setup=_odd_name, expect="missing 'name'"),
    Case(
        "option-too-large",
        {"options/big.yaml": "id: big\n" + "# padding\n" * 150_000},
        expect="larger than",
        dangerous=True,
    ),
    # -- 9: decision compilation ---------------------------------------------------------------
    Case("3010-rules", {"options/many-rules.yaml": _many_rules(2740)}, dangerous=True),
    # -- 10: error quality ---------------------------------------------------------------------
    Case(
        "control-character",
        {"options/hostile.yaml": _option("").replace("name: General", "name: Gen\x01eral")},
        expect=":3:10: the character '\\x01'",
    ),
    Case(
        "nul-in-file",
        {"options/hostile.yaml": _option("").encode().replace(b"General", b"Gen\x00eral")},
        expect="not allowed in YAML",
    ),
    Case(
        "unclosed-placeholder-over-lines",
        {
            "options/hostile.yaml": _option("").replace(
                "    say: Thank you {caller_name}; your reference is {reference}.\n",
                "    say: |\n      Tell {caller_name\n      now} and done\n",
            )
        },
        expect="never closed",
    ),
    # -- the summary's cases, kept covered -----------------------------------------------------
    Case("yaml-bomb", {"options/bomb.yaml": _bomb()}, expect="more than 100,000", dangerous=True),
    Case(
        "a-million-bytes-of-values",
        {"options/values.yaml": "id: values\nv: [" + ",".join(["a"] * 490_000) + "]\n"},
        expect="more than 100,000",
        dangerous=True,
    ),
    Case(
        "just-under-the-value-limit",
        {"options/values.yaml": "id: values\nv: [" + ",".join(["a"] * 99_000) + "]\n"},
        dangerous=True,
    ),
    Case(
        "a-long-block-list",
        {"options/values.yaml": "id: values\nv:\n" + "- a\n" * 240_000},
        expect="more than 100,000",
        dangerous=True,
    ),
    Case("deep-nesting", {"options/deep.yaml": "id: deep\nx: " + "[" * 10_000}, expect="nesting"),
    Case(
        "deep-block-nesting",
        {"options/deep.yaml": "id: deep\n" + "".join(" " * i + "- \n" for i in range(0, 400, 2))},
    ),
    Case("deep-mappings", {"options/deep.yaml": "id: deep\nx: " + "{a: " * 5_000}),
    Case(
        "alias-loop",
        {"options/hostile.yaml": "id: hostile\nx: &a [*a]\n"},
    ),
    Case(
        "duplicate-keys",
        {"options/hostile.yaml": _option("name: again\n")},
        expect="duplicate key 'name'",
    ),
    Case(
        "python-tag",
        {"options/hostile.yaml": _option("x: !!python/object/apply:os.system ['true']\n")},
        expect="not allowed in a ruleset",
    ),
    Case(
        "custom-tag",
        {"options/hostile.yaml": _option("x: !evil {a: 1}\n")},
    ),
    Case("binary-tag", {"options/hostile.yaml": _option("x: !!binary aGVsbG8=\n")}),
    Case("merge-key", {"options/hostile.yaml": "base: &b {id: hostile}\n<<: *b\n"}),
    Case("empty-file", {"options/hostile.yaml": ""}, expect="empty"),
    Case("comments-only", {"options/hostile.yaml": "# nothing\n"}),
    Case("top-level-list", {"options/hostile.yaml": "- id: hostile\n"}),
    Case("top-level-scalar", {"options/hostile.yaml": "just text\n"}),
    Case("two-documents", {"options/hostile.yaml": "id: a\n---\nid: b\n"}),
    Case("not-utf8", {"options/hostile.yaml": b"id: hostile\nname: caf\xe9\n"}, expect="UTF-8"),
    Case("utf16", {"options/hostile.yaml": "id: hostile\n".encode("utf-16")}),
    Case("bom-and-crlf", {"options/hostile.yaml": "\ufeff" + _option("").replace("\n", "\r\n")}),
    Case("tabs", {"options/hostile.yaml": "id: hostile\n\tname: x\n"}),
    Case("unclosed-flow", {"options/hostile.yaml": "id: hostile\nx: [1, 2\n"}),
    Case("unclosed-quote", {"options/hostile.yaml": 'id: hostile\nname: "abc\n'}),
    Case("key-is-a-list", {"options/hostile.yaml": "id: hostile\n? [a, b]\n: 1\n"}),
    Case("long-line", {"options/hostile.yaml": "id: hostile\nname: " + "x" * 500_000 + "\n"}),
    Case("many-keys", {"options/hostile.yaml": "".join(f"k{i}: {i}\n" for i in range(20_000))}),
    Case(
        "condition-deep-parens",
        {
            "options/hostile.yaml": _option("").replace(
                'topic == "emergency"\n', "(" * 500 + "true" + ")" * 500 + "\n", 1
            )
        },
    ),
    Case(
        "condition-too-long",
        {
            "options/hostile.yaml": _option("").replace(
                'topic == "emergency"\n', "true and " * 400 + "true\n", 1
            )
        },
    ),
    Case(
        "condition-python",
        {
            "options/hostile.yaml": _option("").replace(
                'topic == "emergency"\n', "__import__('os').system('true')\n", 1
            )
        },
    ),
    Case(
        "template-attribute",
        {
            "options/hostile.yaml": _option("").replace(
                "your reference is {reference}", "{reference.__class__}"
            )
        },
        expect="is not allowed",
    ),
    Case(
        "template-format-spec",
        {
            "options/hostile.yaml": _option("").replace(
                "your reference is {reference}", "{reference:>99999999}"
            )
        },
    ),
    Case(
        "organisation-is-a-link-out",
        setup=lambda f: (
            (f / "organisation.yaml").unlink() or os.symlink("/etc/passwd", f / "organisation.yaml")
        ),
        expect="links out of them are refused",
    ),
    Case(
        "organisation-control-character",
        {
            "organisation.yaml": (BOROUGH / "organisation.yaml")
            .read_text()
            .replace("Testing", "Test\x1bing")
        },
        expect="not allowed in YAML",
    ),
    # -- the second round: organisation.yaml's time zone beside a rota, a lone file ----------
    *(
        Case(
            f"timezone-{name}",
            {
                "organisation.yaml": (BOROUGH / "organisation.yaml")
                .read_text()
                .replace("timezone: Europe/London", f"timezone: {written}"),
                "rota.yaml": "officers:\n  - {id: ann, name: Ann Lee}\n",
            },
            expect=expect,
        )
        for name, written, expect in (
            ("typo", "Europe/Lundon", "did you mean 'Europe/London'?"),
            ("a-path", '"../../etc/passwd"', "unknown time zone '../../etc/passwd'"),
            ("empty", '""', "unknown time zone ''"),
            ("nul", '"Europe/\\0London"', "unknown time zone"),
            ("10000-characters", "x" * 10_000, "unknown time zone 'xxx"),
        )
    ),
    Case(
        "validate-a-file-outside-a-ruleset-folder",
        {"../lone.yaml": "id: lone\nname: Lone\n"},
        target="../lone.yaml",
        expect="lone.yaml:1:1: this file is not in a ruleset folder",
    ),
    Case(
        "validate-a-rota-outside-a-ruleset-folder",
        {"../rota.yaml": "officers: []\n"},
        target="../rota.yaml",
        expect="rota.yaml:1:1: this file is not in a ruleset folder",
    ),
    Case(
        "validate-a-link-out-directly",
        setup=_link("options/passwd.yaml", "/etc/passwd"),
        target="options/passwd.yaml",
        expect="links out of them are refused",
    ),
    Case(
        "validate-a-fifo-directly",
        setup=_fifo,
        target="options/fifo.yaml",
        expect="not a regular file or a folder",
        dangerous=True,
    ),
]
