"""Entity-level exact-match scoring: precision, recall and F1 per label and micro-averaged. Pure.

A predicted entity counts as correct only when a gold entity has the same ``start``, ``end`` and
``label``. Scoring is restricted to the labels a dataset annotates: predictions of any other label are
left out (BTC has no PRODUCT annotation, so a PRODUCT prediction on a BTC post is neither right nor
wrong), and so are gold entities of labels outside the scored set.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Span = tuple[int, int, str]
"""``(start, end, label)``: character offsets, end exclusive."""


@dataclass(frozen=True, slots=True)
class LabelScore:
    """Counts and rates of one label (or of all labels together for the micro average)."""

    label: str
    tp: int
    fp: int
    fn: int

    @property
    def support(self) -> int:
        """Gold entities of this label."""
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        """``tp / (tp + fp)``; 0 when nothing was predicted."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        """``tp / (tp + fn)``; 0 when there is no gold entity."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall; 0 when both are 0."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True, slots=True)
class Scores:
    """Per-label scores (sorted by label) and their micro average over the scored labels."""

    labels: tuple[LabelScore, ...]
    micro: LabelScore

    def as_dict(self) -> dict[str, dict[str, float | int]]:
        """``{label | "micro": {"precision", "recall", "f1", "support", "tp", "fp", "fn"}}``, rates in %."""
        return {
            s.label: {
                "precision": round(100 * s.precision, 2),
                "recall": round(100 * s.recall, 2),
                "f1": round(100 * s.f1, 2),
                "support": s.support,
                "tp": s.tp,
                "fp": s.fp,
                "fn": s.fn,
            }
            for s in (*self.labels, self.micro)
        }


def score(
    gold: Sequence[Iterable[Span]], predicted: Sequence[Iterable[Span]], labels: Iterable[str] | None = None
) -> Scores:
    """Exact-match scores of ``predicted`` against ``gold``, post by post (same order, same length).

    ``labels`` are the labels the data annotates; ``None`` means the labels that occur in ``gold``.
    Duplicate spans within a post count once.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold posts but {len(predicted)} predicted")
    gold_sets = [set(g) for g in gold]
    scored = set(labels) if labels is not None else {s[2] for g in gold_sets for s in g}
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for g, p in zip(gold_sets, predicted, strict=True):
        g = {s for s in g if s[2] in scored}
        p = {s for s in p if s[2] in scored}
        for s in g & p:
            tp[s[2]] += 1
        for s in p - g:
            fp[s[2]] += 1
        for s in g - p:
            fn[s[2]] += 1
    per = tuple(LabelScore(label, tp[label], fp[label], fn[label]) for label in sorted(scored))
    micro = LabelScore("micro", sum(tp.values()), sum(fp.values()), sum(fn.values()))
    return Scores(per, micro)
