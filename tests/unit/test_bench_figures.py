"""The figures ``model bench`` prints: one row label per system, per-repeat ratios between models."""

from __future__ import annotations

import pytest

from stream_ner.offline.bench import Result, System, against_first_model, row_labels


def _noop(texts: list[str]) -> object:
    return texts


def test_row_labels_never_run_out() -> None:
    labels = row_labels(30)
    assert labels[:3] == ["a", "b", "c"]
    assert labels[25:28] == ["z", "aa", "ab"]
    assert len(set(labels)) == 30


def test_later_models_are_compared_with_the_first_per_repeat_and_precision() -> None:
    systems = [
        System("naive", 1, _noop),
        System("first fp32", 32, _noop, 0, "fp32"),
        System("first int8", 32, _noop, 0, "int8"),
        System("second fp32", 32, _noop, 1, "fp32"),
        System("second int8", 32, _noop, 1, "int8"),
    ]
    results = [
        Result("naive", 1, [10.0, 10.0, 10.0]),
        Result("first fp32", 32, [100.0, 50.0, 100.0]),
        Result("first int8", 32, [200.0, 100.0, 200.0]),
        Result("second fp32", 32, [110.0, 60.0, 90.0]),
        # slower in the loaded second repeat, but faster than the first model in every repeat
        Result("second int8", 32, [240.0, 130.0, 250.0]),
    ]
    ratios = against_first_model(systems, results)
    assert set(ratios) == {3, 4}
    assert ratios[3]["of"] == 1 and ratios[4]["of"] == 2
    assert ratios[3]["median"] == pytest.approx(1.1)
    assert (ratios[3]["min"], ratios[3]["max"]) == pytest.approx((0.9, 1.2))
    assert ratios[4]["median"] == pytest.approx(1.25)
    assert (ratios[4]["min"], ratios[4]["max"]) == pytest.approx((1.2, 1.3))
