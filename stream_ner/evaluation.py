"""Entity-level exact-match scoring: precision, recall and F1 per label and micro-averaged. Pure.

A predicted entity counts as correct only when a gold entity has the same ``start``, ``end`` and
``label``. Scoring is restricted to the labels a dataset annotates: predictions of any other label are
left out (BTC has no PRODUCT annotation, so a PRODUCT prediction on a BTC post is neither right nor
wrong), and so are gold entities of labels outside the scored set.

Entities nobody has seen yet are what a brand monitor lives on, so ``score_by_novelty`` also splits the
scores into *seen* and *unseen* entities, as the WNUT-17 shared task did: a gold entity is unseen when its
normalised surface form (``surface_key``) never occurs as an entity, of any label, in the training data;
a predicted entity counts toward the unseen precision when its own surface form is unseen. An exact match
has the gold entity's surface, so every true positive falls on the same side for gold and prediction.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

Span = tuple[int, int, str]
"""``(start, end, label)``: character offsets, end exclusive."""

_SPACES = re.compile(r"\s+")


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


def surface_key(surface: str) -> str:
    """The normalised surface form of a mention (what "seen in training" compares).

    Case-folded, whitespace runs made one space, trimmed, one leading ``@``, ``#`` or ``$`` taken off:
    ``"@Nike"``, ``"#nike"`` and ``" NIKE "`` give ``"nike"``.
    """
    key = _SPACES.sub(" ", surface.casefold()).strip()
    if key[:1] in ("@", "#", "$"):
        key = key[1:].lstrip()
    return key


def known_surfaces(texts: Sequence[str], spans: Sequence[Iterable[Span]]) -> frozenset[str]:
    """The ``surface_key`` of every entity of some posts (the training data), whatever its label."""
    return frozenset(surface_key(t[s:e]) for t, found in zip(texts, spans, strict=True) for s, e, _ in found)


@dataclass(frozen=True, slots=True)
class NoveltyScores:
    """Scores on the entities whose surface form the training data has (``seen``) and has not (``unseen``)."""

    seen: Scores
    unseen: Scores


def score_by_novelty(
    texts: Sequence[str],
    gold: Sequence[Iterable[Span]],
    predicted: Sequence[Iterable[Span]],
    known: Collection[str],
    labels: Iterable[str] | None = None,
) -> NoveltyScores:
    """``score`` of the seen and of the unseen entities of ``gold`` and ``predicted`` (see the module).

    ``known`` holds the ``surface_key`` of the training entities; ``labels`` is as in ``score``
    (``None``: the labels in ``gold``), the same for both parts.
    """
    if not len(texts) == len(gold) == len(predicted):
        raise ValueError(f"{len(texts)} texts, {len(gold)} gold posts and {len(predicted)} predicted")
    gold = [list(g) for g in gold]
    scored = set(labels) if labels is not None else {s[2] for g in gold for s in g}
    parts: dict[bool, tuple[list[list[Span]], list[list[Span]]]] = {True: ([], []), False: ([], [])}
    for text, g, p in zip(texts, gold, predicted, strict=True):
        for side, spans in ((0, g), (1, p)):
            split: dict[bool, list[Span]] = {True: [], False: []}
            for span in spans:
                split[surface_key(text[span[0] : span[1]]) in known].append(span)
            for seen in (True, False):
                parts[seen][side].append(split[seen])
    return NoveltyScores(seen=score(*parts[True], labels=scored), unseen=score(*parts[False], labels=scored))


def exact_post_accuracy(
    gold: Sequence[Iterable[Span]], predicted: Sequence[Iterable[Span]], labels: Iterable[str] | None = None
) -> float:
    """Share of posts whose predicted entities are exactly the gold ones; 0 for no posts.

    Only the scored labels count, as in ``score``; a post without gold entities is right when nothing
    is predicted.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold posts but {len(predicted)} predicted")
    gold_sets = [set(g) for g in gold]
    scored = set(labels) if labels is not None else {s[2] for g in gold_sets for s in g}
    right = sum(
        {s for s in g if s[2] in scored} == {s for s in p if s[2] in scored}
        for g, p in zip(gold_sets, predicted, strict=True)
    )
    return right / len(gold) if gold else 0.0
