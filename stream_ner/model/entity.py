"""The entity span every stage speaks: model output, event payload, evaluation unit."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Entity:
    """A labelled span of a post.

    ``start`` and ``end`` are character offsets into the original text (end exclusive), so
    ``text == post_text[start:end]`` always holds. ``score`` is the model's confidence in [0, 1].
    """

    start: int
    end: int
    label: str
    score: float
    text: str
