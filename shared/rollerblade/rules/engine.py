"""Pure rule evaluation: which rules a triggering record fires, and the slice around it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from rollerblade.analyses.spec import AnalysisSpec
from rollerblade.query import ast
from rollerblade.query.evaluate import Matcher
from rollerblade.rules.model import Rule, Trigger


def fired(rules: Sequence[Rule], trigger: Trigger, of: str | None, flat: Mapping[str, Any]) -> list[Rule]:
    """The rules ``trigger`` (of the Analysis ``of`` for job events) fires for one record's
    flat view: their ``on`` and ``of`` agree and their ``when`` matches. A term several
    rules AND (``extension=.nii.gz``, ``NOT exists(analysis)``) is evaluated once."""
    answers: dict[Matcher, bool] = {}
    found = []
    for rule in rules:
        if rule.on != trigger or (rule.of is not None and rule.of != of):
            continue
        for term in rule.when_parts:
            answer = answers.get(term)
            if answer is None:
                answer = answers[term] = term(flat)
            if not answer:
                break
        else:
            found.append(rule)
    return found


def effective_spec(spec: AnalysisSpec, rule: Rule) -> AnalysisSpec:
    """The Analysis as the rule runs it: its params overridden, its slice replaced."""
    if rule.run is None or (not rule.run.params and rule.run.slice is None):
        return spec
    slice_kind = rule.run.slice or spec.slice
    changed = dataclasses.replace(spec, params={**spec.params, **rule.run.params})
    return dataclasses.replace(changed, slice=slice_kind) if slice_kind != spec.slice else changed  # type: ignore[arg-type]


def usable(node: ast.Node) -> ast.Node:
    """``node AND NOT exists(error)``: records an Analysis may take."""
    return ast.And((node, ast.Not(ast.Exists(ast.Field("error", 0)))))
