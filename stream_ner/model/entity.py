"""The entity span every stage speaks (model output, event payload, evaluation unit), and its sentiment."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sentiment:
    """A sentiment distribution over ``negative, neutral, positive``.

    ``probs`` are the three probabilities in that order (summing to 1), ``label`` the most probable one
    and ``score`` ``P(positive) - P(negative)``, in [-1, 1].
    """

    label: str
    score: float
    probs: tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class Entity:
    """A labelled span of a post.

    ``start`` and ``end`` are character offsets into the original text (end exclusive), so
    ``text == post_text[start:end]`` always holds. ``score`` is the model's confidence in [0, 1].
    ``sentiment`` is the polarity toward the span, when the model was asked for it
    (``NerModel.analyze``); ``predict`` leaves it ``None``.
    """

    start: int
    end: int
    label: str
    score: float
    text: str
    sentiment: Sentiment | None = None
