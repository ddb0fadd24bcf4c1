"""The project's own ruleset fuzzer: mutated catalogue files through ``oohcore validate``.

Each case takes one file of the real catalogue (rulesets/catalogue), applies one to three
mutations chosen by a seeded random generator (a byte changed, a line deleted, repeated or
moved, a hostile token inserted: aliases, tags, brackets, quotes, control characters, huge
numbers and durations, extends out of the tree, template braces, backtracking patterns …) and
validates the file in a copy of the catalogue, in-process under a time limit. The assertions
are the corpus's (tests/hostile/run.py): exit 0 or 1, ``path:line:col:`` lines, no
traceback, no hang; the peak memory of the whole run is reported, so the test checks it.

Reproducible: case ``i`` of seed ``s`` is the same mutation on every machine; the run's length
is bounded by time. Run by hand::

    .venv/bin/python tests/hostile/fuzz.py --seed 1234 --seconds 60
    .venv/bin/python tests/hostile/fuzz.py --seed 1234 --case 57 --show
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))
from hostile.run import Hang, Outcome, validate_in_process

ROOT = Path(__file__).parents[2]
CATALOGUE = ROOT / "rulesets" / "catalogue"
CASE_TIMEOUT_S = 10.0

TOKENS = [
    "*a",
    "&a ",
    "&a [*a]",
    "!!python/object/apply:os.system ['true'] ",
    "!!binary aGVsbG8= ",
    "!custom ",
    "{",
    "}",
    "[",
    "]",
    ": ",
    "- ",
    "? ",
    "'",
    '"',
    "\\",
    "#",
    "|",
    ">-",
    "1.0e+999",
    "-1.0e+999",
    ".nan",
    "9" * 60,
    "900000000h",
    "0m",
    "\x00",
    "\x01",
    "\x1b",
    "\ufeff",
    "\u2028",
    '"\\ud800"',
    "<<: ",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "{{",
    "}}",
    "{team",
    "{#uprn}",
    "{/uprn}",
    "{reference.__class__}",
    "(\\w+\\s?)+$",
    "(a)\\1",
    "extends: /etc/passwd\n",
    "extends: ../../../../etc/hostname\n",
    "extends: catalogue:../x\n",
    "extends: catalogue:noise\n",
    "\t",
    " and not ",
    " or ",
    "((((((((((",
    "))))",
    ' == "x"',
    " in [1, 2, 3]",
    "__import__('os')",
]
VALUES = [
    "null",
    "~",
    "[]",
    "{}",
    "yes",
    "no",
    "0",
    "-1",
    "1.0e+999",
    "99999999999999999999999999999",
    '"a\\x00b"',
    "x" * 3000,
    "&a [*a, *a]",
    "900000000h",
    "'{unclosed'",
    "2026-13-45",
    '"25:99"',
    "catalogue:catalogue",
    "[" * 80 + "]" * 80,
    "&b [*b]",
    "*nowhere",
    "!!python/name:os.system ''",
    "{a: 1, a: 2}",
    "[&c {x: 1}, *c, *c]",
    '"\\ud800"',
    "'" + "{" * 50 + "'",
    "'" + "(" * 100 + "'",
    "0x" + "f" * 40,
    "1_000_000",
    "-.inf",
]


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True) or [""]


def mutate(rng: random.Random, text: str) -> str:
    """One mutation of ``text``."""
    lines = _lines(text)
    i = rng.randrange(len(lines))
    kind = rng.randrange(10)
    if kind == 0:  # a character changed
        pos = rng.randrange(len(text) or 1)
        return (
            text[:pos]
            + chr(rng.choice([rng.randrange(32), rng.randrange(32, 127)]))
            + text[pos + 1 :]
        )
    if kind == 1:  # a line deleted
        del lines[i]
    elif kind == 2:  # a line repeated
        lines[i:i] = [lines[i]] * rng.choice([1, 2, 50])
    elif kind == 3:  # two lines swapped
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == 4:  # a hostile token inserted
        pos = rng.randrange(len(lines[i]) + 1)
        lines[i] = lines[i][:pos] + rng.choice(TOKENS) + lines[i][pos:]
    elif kind == 5:  # a value replaced
        head, sep, _ = lines[i].partition(": ")
        if sep:
            lines[i] = f"{head}: {rng.choice(VALUES)}\n"
    elif kind == 6:  # indentation changed
        lines[i] = (
            (" " * rng.choice([1, 2, 4]) + lines[i]) if rng.random() < 0.5 else lines[i].lstrip(" ")
        )
    elif kind == 7:  # cut short
        return text[: rng.randrange(len(text) + 1)]
    elif kind == 8:  # a block repeated (growth)
        j = min(len(lines), i + rng.randrange(1, 20))
        lines[j:j] = lines[i:j] * rng.choice([2, 10, 100])
    else:  # a condition or template garbled
        head, sep, rest = lines[i].partition(": ")
        if sep:
            words = rest.split()
            rng.shuffle(words)
            words.insert(rng.randrange(len(words) + 1), rng.choice(TOKENS).strip())
            lines[i] = f"{head}: {' '.join(words)}\n"
    return "".join(lines)


def case(seed: int, index: int, files: list[Path]) -> tuple[Path, str]:
    """The file and mutated text of case ``index`` of ``seed``."""
    rng = random.Random(f"{seed}:{index}")
    path = rng.choice(files)
    text = path.read_text(encoding="utf-8")
    for _ in range(rng.randint(1, 3)):
        text = mutate(rng, text)
    return path, text


def _files() -> list[Path]:
    return sorted([*CATALOGUE.glob("*.yaml"), *(CATALOGUE / "options").glob("*.yaml")])


def run(seed: int, seconds: float, *, only: int | None = None) -> dict[str, object]:
    """Fuzz for ``seconds`` (or just case ``only``); the cases run and the failures found."""
    files = _files()
    failures: list[dict[str, object]] = []
    started = time.monotonic()
    index = 0 if only is None else only
    count = 0
    with tempfile.TemporaryDirectory(prefix="oohcore-fuzz-") as tmp:
        copy = Path(tmp) / "catalogue"
        shutil.copytree(CATALOGUE, copy)
        while True:
            original, text = case(seed, index, files)
            target = copy / original.relative_to(CATALOGUE)
            target.write_text(text, encoding="utf-8", errors="surrogatepass")
            try:
                outcome = validate_in_process(
                    ["--catalogue", str(copy), str(target)], timeout=CASE_TIMEOUT_S
                )
                found = outcome.failures()
            except Hang as exc:
                outcome, found = Outcome(-1, "", ""), [str(exc)]
            except BaseException as exc:  # a crash inside main(): what the fuzzer looks for
                outcome = Outcome(-1, "", "")
                found = [f"{type(exc).__name__}: {exc}"[:500], traceback.format_exc()[-1500:]]
            finally:
                shutil.copyfile(original, target)
            count += 1
            if found:
                failures.append(
                    {
                        "case": index,
                        "file": str(original.relative_to(ROOT)),
                        "failures": found,
                        "output": (outcome.out + outcome.err)[-1000:],
                    }
                )
            index += 1
            if only is not None or time.monotonic() - started >= seconds or len(failures) >= 5:
                break
    peak_mb = _peak_kb() / 1024
    return {"seed": seed, "cases": count, "failures": failures, "peak_mb": round(peak_mb, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--case", type=int, default=None, help="run only this case")
    parser.add_argument("--show", action="store_true", help="print the case's mutated file")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**9)
    if args.show and args.case is not None:
        path, text = case(seed, args.case, _files())
        print(f"# {path.relative_to(ROOT)}")
        print(text)
        return 0
    result = run(seed, args.seconds, only=args.case)
    print(json.dumps(result, indent=2))
    return 1 if result["failures"] else 0


def _peak_kb() -> int:
    """This process image's peak resident size: VmHWM, not ru_maxrss, which on Linux keeps the
    parent's peak across exec (the pytest worker's, when the test starts the fuzzer)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


if __name__ == "__main__":
    raise SystemExit(main())
