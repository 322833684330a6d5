"""Sentiment classification measures: macro-averaged recall, accuracy, macro-F1. Pure.

Labels are ids into ``SENTIMENT_LABELS`` (negative, neutral, positive). Post sentiment is reported as
TweetEval reports it (macro-averaged recall over the three classes, its official measure), with
accuracy and macro-F1; target sentiment as accuracy and macro-F1 (Dong et al. 2014's measures). A class
without gold items has recall 0 and counts in the macro average; so does a class never predicted.
"""

from __future__ import annotations

from collections.abc import Sequence

CLASSES = 3


def _per_class(gold: Sequence[int], predicted: Sequence[int]) -> list[tuple[float, float, float]]:
    """(precision, recall, F1) per class."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predicted")
    out = []
    for c in range(CLASSES):
        tp = sum(g == c and p == c for g, p in zip(gold, predicted, strict=True))
        n_gold = sum(g == c for g in gold)
        n_pred = sum(p == c for p in predicted)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out.append((precision, recall, f1))
    return out


def accuracy(gold: Sequence[int], predicted: Sequence[int]) -> float:
    """Share of items whose predicted label is the gold one; 0 for no items."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predicted")
    return sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold) if gold else 0.0


def post_scores(gold: Sequence[int], predicted: Sequence[int]) -> dict[str, float]:
    """``{"macro_recall", "accuracy", "macro_f1"}`` as fractions in [0, 1]."""
    per = _per_class(gold, predicted)
    return {
        "macro_recall": sum(r for _, r, _ in per) / CLASSES,
        "accuracy": accuracy(gold, predicted),
        "macro_f1": sum(f for _, _, f in per) / CLASSES,
    }


def target_scores(gold: Sequence[int], predicted: Sequence[int]) -> dict[str, float]:
    """``{"accuracy", "macro_f1"}`` as fractions in [0, 1]."""
    per = _per_class(gold, predicted)
    return {"accuracy": accuracy(gold, predicted), "macro_f1": sum(f for _, _, f in per) / CLASSES}
