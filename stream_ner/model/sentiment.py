"""Sentiment head outputs to ``Sentiment`` values, and the ``Analysis`` of a post. Pure numpy.

For one text, given its windows' ``post_sentiment`` logits ``[3]`` and its merged ``target_sentiment``
logits ``[tokens, 3]`` (labels ``negative, neutral, positive``):

1. **Post**: the mean of its windows' post logits, then softmax (a post that fits one window is that
   window's). A text without tokens has no logits: it gets the uniform distribution (``neutral``,
   score 0).
2. **Span** ``[start, end)`` (a given target or a found entity): the mean of the target logits over
   the subword tokens whose character offsets overlap the span, then softmax. Where windows overlap, a
   token's target logits are those of the window where it has the most context on both sides, the rule
   ``decode.merge_windows`` applies to the tag logits, so a span's tokens can come from different
   windows. A span that overlaps no token (whitespace only) takes the post's sentiment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from stream_ner.model.decode import softmax
from stream_ner.model.entity import Entity, Sentiment

LABELS: tuple[str, str, str] = ("negative", "neutral", "positive")
"""Label order of the sentiment outputs (``ner_config.json``'s ``sentiment_labels``)."""

UNIFORM = Sentiment("neutral", 0.0, (1 / 3, 1 / 3, 1 / 3))
"""The sentiment of a text without tokens."""


@dataclass(frozen=True, slots=True)
class Analysis:
    """What ``NerModel.analyze`` finds in one text.

    ``entities`` are the entities ``predict`` returns, each with its ``sentiment``; ``sentiment`` is the
    post's; ``targets`` holds one ``Sentiment`` per span asked for, in order (empty when none were).
    """

    entities: list[Entity]
    sentiment: Sentiment
    targets: list[Sentiment] = field(default_factory=list)


def to_sentiment(logits: np.ndarray) -> Sentiment:
    """The ``Sentiment`` of one logit vector ``[3]`` (``LABELS`` order)."""
    probs = softmax(np.asarray(logits, dtype=np.float32)[None, :])[0].astype(np.float64)
    neg, neu, pos = (float(p) for p in probs)
    return Sentiment(LABELS[int(np.argmax(probs))], pos - neg, (neg, neu, pos))


def post_sentiment(window_logits: Sequence[np.ndarray]) -> Sentiment:
    """Step 1: the post's sentiment from its windows' post logits (``UNIFORM`` for none)."""
    if not len(window_logits):
        return UNIFORM
    return to_sentiment(np.mean(np.stack(window_logits), axis=0))


def span_tokens(offsets: np.ndarray, start: int, end: int) -> np.ndarray:
    """Indices of the tokens whose character offsets ``[n, 2]`` overlap ``[start, end)``."""
    if len(offsets) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero((offsets[:, 0] < end) & (offsets[:, 1] > start))


def span_sentiment(
    target_logits: np.ndarray, offsets: np.ndarray, start: int, end: int, post: Sentiment
) -> Sentiment:
    """Step 2: the sentiment toward ``[start, end)``; ``post`` when the span overlaps no token."""
    tokens = span_tokens(offsets, start, end)
    if len(tokens) == 0:
        return post
    return to_sentiment(target_logits[tokens].mean(axis=0))


def check_targets(texts: Sequence[str], targets: Sequence[Sequence[tuple[int, int]]] | None) -> None:
    """``ValueError`` unless ``targets`` (if given) has one list per text of in-text, non-empty spans."""
    if targets is None:
        return
    if len(targets) != len(texts):
        raise ValueError(f"targets has {len(targets)} lists for {len(texts)} texts")
    for index, (text, spans) in enumerate(zip(texts, targets, strict=True)):
        for span in spans:
            start, end = span
            if not (0 <= start < end <= len(text)):
                raise ValueError(
                    f"text {index}: target span {tuple(span)!r} is not a non-empty span inside the text "
                    f"(length {len(text)})"
                )
