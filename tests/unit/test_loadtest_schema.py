"""The committed result files have exactly the shape ``loadtest.schema`` declares, so the report's keys
(checked by mypy against the same types) exist in the files it reads."""

from __future__ import annotations

import types
import typing
from typing import Any, NotRequired, Required, get_args, get_origin, get_type_hints

import pytest

from loadtest import report, schema


def mismatches(value: Any, hint: Any, where: str) -> list[str]:
    """Where ``value`` does not have the shape ``hint`` says (keys of TypedDicts, element types)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (NotRequired, Required):
        return mismatches(value, args[0], where)
    if hint is Any:
        return []
    if origin in (typing.Union, types.UnionType):
        found = [mismatches(value, option, where) for option in args]
        return [] if any(not f for f in found) else found[0]
    if hint is type(None):
        return [] if value is None else [f"{where}: {value!r} is not None"]
    if typing.is_typeddict(hint):
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        fields = get_type_hints(hint, include_extras=True)
        out = [f"{where}.{key}: missing" for key in hint.__required_keys__ if key not in value]
        out += [f"{where}.{key}: not in {hint.__name__}" for key in value if key not in fields]
        for key, item in value.items():
            if key in fields:
                out += mismatches(item, fields[key], f"{where}.{key}")
        return out
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: not a list"]
        return [m for i, item in enumerate(value) for m in mismatches(item, args[0], f"{where}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        return [m for key, item in value.items() for m in mismatches(item, args[1], f"{where}.{key}")]
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{where}: {value!r} is not a number"]
    return [] if isinstance(value, hint) else [f"{where}: {value!r} is not {hint.__name__}"]


@pytest.mark.parametrize("scenario", list(schema.DOCUMENTS))
def test_committed_result_files_have_the_declared_shape(scenario):
    docs = report.load(report.RESULTS)
    assert scenario in docs, "loadtest/results/ lacks a scenario; run: python -m loadtest.scenarios all"
    assert mismatches(docs[scenario], schema.DOCUMENTS[scenario], scenario) == []


def test_the_checker_notices_a_renamed_key():
    docs = report.load(report.RESULTS)
    soak = dict(docs["soak"])
    soak["figures"] = dict(soak["figures"])
    soak["figures"]["rss_growth"] = soak["figures"].pop("rss_growth_mb")
    assert mismatches(soak, schema.SoakDoc, "soak") == [
        "soak.figures.rss_growth_mb: missing",
        "soak.figures.rss_growth: not in SoakFigures",
    ]
