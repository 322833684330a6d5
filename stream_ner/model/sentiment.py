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


def to_sentiments(logits: np.ndarray) -> list[Sentiment]:
    """The ``Sentiment`` of each row of ``[n, 3]`` logits (``LABELS`` order), in one softmax."""
    if len(logits) == 0:
        return []
    probs = softmax(np.asarray(logits, dtype=np.float32)).astype(np.float64)
    best = probs.argmax(axis=-1).tolist()
    return [
        Sentiment(LABELS[b], pos - neg, (neg, neu, pos))
        for b, (neg, neu, pos) in zip(best, probs.tolist(), strict=True)
    ]


def to_sentiment(logits: np.ndarray) -> Sentiment:
    """The ``Sentiment`` of one logit vector ``[3]`` (``LABELS`` order)."""
    return to_sentiments(np.asarray(logits)[None, :])[0]


def post_logits(window_logits: Sequence[np.ndarray]) -> np.ndarray | None:
    """Step 1's mean of a post's window logits (``None`` for a post without windows)."""
    if not len(window_logits):
        return None
    if len(window_logits) == 1:
        return window_logits[0]
    return np.mean(np.stack(window_logits), axis=0)


def post_sentiment(window_logits: Sequence[np.ndarray]) -> Sentiment:
    """Step 1: the post's sentiment from its windows' post logits (``UNIFORM`` for none)."""
    logits = post_logits(window_logits)
    return UNIFORM if logits is None else to_sentiment(logits)


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


@dataclass(frozen=True, slots=True)
class SentimentInputs:
    """What steps 1 and 2 need of one text.

    Its windows' post logits in order, its merged target logits ``[tokens, 3]`` (``None`` without
    tokens), its tokens' character offsets ``[tokens, 2]`` and the spans to score.
    """

    post_windows: list[np.ndarray]
    target_logits: np.ndarray | None
    offsets: np.ndarray
    spans: list[tuple[int, int]]


def sentiments(texts: Sequence[SentimentInputs]) -> list[tuple[Sentiment, list[Sentiment]]]:
    """Steps 1 and 2 for many texts at once: per text, its post's sentiment and one per span.

    The same values as ``post_sentiment`` and ``span_sentiment`` text by text, with one softmax over
    every post and one over every span instead of one per post and per span, and the tokens of all spans
    found at once (``_span_means``).
    """
    means = [post_logits(t.post_windows) for t in texts]
    rows = [m for m in means if m is not None]
    found = iter(to_sentiments(np.stack(rows)) if rows else [])
    posts = [UNIFORM if m is None else next(found) for m in means]
    owners, span_rows, has_tokens = _span_means(texts)
    scored = iter(to_sentiments(span_rows) if len(span_rows) else [])
    by_text: list[list[Sentiment]] = [[] for _ in texts]
    for index, overlaps in zip(owners, has_tokens, strict=True):
        by_text[index].append(next(scored) if overlaps else posts[index])
    return list(zip(posts, by_text, strict=True))


def _span_means(texts: Sequence[SentimentInputs]) -> tuple[list[int], np.ndarray, list[bool]]:
    """Per span of every text, in order: its text's index, whether it overlaps a token, and mean logits.

    The means are the target logits averaged over the tokens a span overlaps, one row per span that
    overlaps any (``[rows, 3]``). Token offsets run forward through a text, so the tokens a span overlaps
    are one run of them, found for all spans at once by binary search over every text's offsets laid end
    to end. Each run is summed in token order and divided as ``np.mean`` divides: every row equals
    ``target_logits[span_tokens(offsets, start, end)].mean(axis=0)``, which a text whose offsets do not
    run forward still gets, span by span.
    """
    owners: list[int] = []
    plan: list[int | np.ndarray | None] = []  # per span: its row in ``spans``, its mean, or no tokens
    tables: list[np.ndarray] = []
    offsets: list[np.ndarray] = []
    spans: list[tuple[int, int]] = []
    char_base = 0
    for index, t in enumerate(texts):
        owners += [index] * len(t.spans)
        if not t.spans or t.target_logits is None or len(t.offsets) == 0:
            plan += [None] * len(t.spans)
        elif (np.diff(t.offsets, axis=0) < 0).any():
            for start, end in t.spans:
                tokens = span_tokens(t.offsets, start, end)
                plan.append(t.target_logits[tokens].mean(axis=0) if len(tokens) else None)
        else:
            tables.append(t.target_logits)
            offsets.append(t.offsets + char_base)
            for start, end in t.spans:
                plan.append(len(spans))
                spans.append((start + char_base, end + char_base))
            char_base += int(max(t.offsets.max(), max(end for _, end in t.spans))) + 1
    if spans:
        laid = np.concatenate(offsets)
        wanted = np.asarray(spans, dtype=np.int64)
        first = np.searchsorted(laid[:, 1], wanted[:, 0], side="right").tolist()  # ends after the start
        stop = np.searchsorted(laid[:, 0], wanted[:, 1], side="left").tolist()  # starts before the end
        table = np.concatenate(tables)
    rows: list[np.ndarray] = []
    counts: list[int] = []
    has_tokens: list[bool] = []
    for entry in plan:
        if isinstance(entry, int):
            a, b = first[entry], stop[entry]
            if b > a:
                rows.append(np.add.reduce(table[a:b], axis=0))
                counts.append(b - a)
            has_tokens.append(b > a)
        else:
            if entry is not None:
                rows.append(entry)
                counts.append(1)  # already a mean
            has_tokens.append(entry is not None)
    if not rows:
        return owners, np.zeros((0, len(LABELS)), dtype=np.float32), has_tokens
    sums = np.stack(rows)
    divisors = np.asarray(counts, dtype=np.intp)[:, None]
    return owners, np.true_divide(sums, divisors, out=sums, casting="unsafe"), has_tokens


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
