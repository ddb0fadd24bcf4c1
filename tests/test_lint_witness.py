"""The witness search's three-valued evaluator agrees with the compiled conditions.

Lint prunes its search with :func:`oohcore.procedure.witness.evaluate`; a "never matches"
finding is only as good as that agreement. For every rule and ``ask_if`` of every catalogue
and example option, random assignments drawn from the search's own domains (unanswered
included) are evaluated both ways; and an evaluation that is decided while some fields are
still unknown must not change when they become known.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from oohcore.procedure.witness import UNKNOWN, Search, builtin_defaults, evaluate, names
from oohcore.rulesets.conditions import compile_condition
from oohcore.rulesets.loader import load_catalogue, load_organisation

ROOT = Path(__file__).parents[1]


def _options() -> list:  # type: ignore[type-arg]
    cat = load_catalogue(ROOT / "rulesets" / "catalogue")
    org = load_organisation(ROOT / "examples" / "example-borough")
    return [*cat.service_options.values(), *org.service_options.values()]


@pytest.mark.parametrize("option", _options(), ids=lambda o: f"{o.organisation_id}/{o.id}")
def test_evaluate_agrees_with_the_compiled_condition(option) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(option.id)
    search = Search(option)
    texts = [r.when for r in option.definition.decision.rules]
    texts += [q.ask_if for q in option.questions if q.ask_if]
    checked = 0
    for text, node in zip(texts, [*search.rules, *search.ask_if.values()], strict=True):
        compiled = compile_condition(text, option.fields, option.settings)
        fields = sorted(names(node) - set(option.settings))
        for _ in range(60):
            env = {f: rng.choice(search.domains[f]) for f in fields}
            values = {**builtin_defaults(), **option.settings, **env}
            values = {k: v for k, v in values.items() if v is not None}
            full = {**{f: None for f in fields}, **values}
            want = compiled.holds(values)
            assert bool(evaluate(node, full, search.fixed)) is want, (text, env)
            # with a field unknown, a decided result must already be the final one
            if fields:
                hidden = dict(full)
                del hidden[rng.choice(fields)]
                partial = evaluate(node, hidden, search.fixed)
                if partial is not UNKNOWN:
                    assert bool(partial) is want, (text, env)
            checked += 1
    assert checked == 60 * len(texts)
