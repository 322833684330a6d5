"""The records between the two stages of the aggregator: entity events in, ``BrandMention`` batches out.

``read_event`` is the edge where an ``entities`` value (an ``EntityEvent`` as JSON) becomes the few fields
the aggregator needs, without building the pydantic model: it checks the types of what it reads and raises
``ValueError`` on anything else. ``mentions_of`` is the pure re-keying step: one post in, one
``BrandMention`` per brand of the post out, carrying everything a per-brand window needs, so the by-brand
stage never looks back at the post. A by-brand record holds the mentions bound for one by-brand partition
from one batch of entity events (``encode_batch``), so the second stage reads one record per partition and
batch, not one per mention.

Sentiment: every mention of a brand has one polarity, counted in ``BrandMention.tone``: an entity linked to
the brand carries the sentiment toward its span (``sentiment_label``, ``sentiment``); one without it, and a
brand found only by the catalog (no entity over it, counted once), takes the post's. A mention with no
sentiment anywhere (a model without sentiment heads) is not in ``tone``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from stream_ner.brands.normalize import fold

LABELS = ("negative", "neutral", "positive")
"""Sentiment labels, in the order of ``BrandMention.tone``."""

Tone = tuple[int, float]
"""One mention's sentiment: index in ``LABELS`` and score in [-1, 1]."""


@dataclass(frozen=True, slots=True)
class PostView:
    """What the aggregator reads of one ``EntityEvent``."""

    post_id: str
    time_ms: int
    author: str | None
    tone: Tone | None  # the post's sentiment
    brands: tuple[str, ...]
    linked: tuple[tuple[str, Tone | None], ...]  # brand and sentiment of every linked entity
    others: tuple[str, ...]  # ``LABEL:folded text`` of every entity not linked to a brand


@dataclass(frozen=True, slots=True)
class BrandMention:
    """A post as seen by one of the brands it mentions.

    ``time_ms`` is the event time: the post's ``created_at``, else the Kafka timestamp of the ``raw-posts``
    record, else that of the ``entities`` record. ``mentions`` counts the entities linked to the brand, at
    least 1 (a brand found only in untagged text counts once per post); ``tone`` counts them by polarity
    (negative, neutral, positive; those with a sentiment) and ``sentiment`` sums their scores.
    ``source`` and ``source_offset``
    locate the entity event on ``entities``: the by-brand stage skips a mention it has already applied
    from that position (see ``panes``).
    """

    brand: str
    post_id: str
    time_ms: int
    author: str | None
    mentions: int
    sentiment: float
    tone: tuple[int, int, int]
    co_brands: tuple[str, ...]
    co_entities: tuple[str, ...]
    source: int = 0
    source_offset: int = 0


def read_event(raw: bytes | None, record_timestamp_ms: int | None) -> PostView:
    """The aggregator's view of one ``entities`` value; ``ValueError`` when it is not an entity event."""
    try:
        data = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    post_id = _text(data, "post_id")
    entities = data.get("entities")
    brands = data.get("brands", [])
    if not isinstance(entities, list) or not isinstance(brands, list):
        raise ValueError("entities and brands must be lists")
    linked, others = [], []
    for entity in entities:
        if not isinstance(entity, dict):
            raise ValueError("an entity is not an object")
        brand = entity.get("brand")
        if brand is None:
            others.append(f"{_text(entity, 'label')}:{fold(_text(entity, 'text')).strip()}")
        elif isinstance(brand, str):
            linked.append((brand, _tone(entity)))
        else:
            raise ValueError("entity brand must be a string")
    if not all(isinstance(b, str) for b in brands):
        raise ValueError("brands must be strings")
    author = data.get("author")
    if author is not None and not isinstance(author, str):
        raise ValueError("author must be a string")
    return PostView(
        post_id=post_id,
        time_ms=_event_time_ms(data, record_timestamp_ms),
        author=author,
        tone=_tone(data),
        brands=tuple(brands),
        linked=tuple(linked),
        others=tuple(others),
    )


def mentions_of(post: PostView, source: int = 0, source_offset: int = 0) -> list[BrandMention]:
    """One ``BrandMention`` per brand of the post, in brand order; none when it mentions no brand.

    Co-entities are the post's entities not linked to a brand, as ``LABEL:folded text``.
    """
    linked: dict[str, list[Tone | None]] = {}
    for brand, tone in post.linked:
        linked.setdefault(brand, []).append(tone or post.tone)
    brands = sorted(set(post.brands) | set(linked))
    entities = tuple(sorted(set(post.others)))
    out = []
    for brand in brands:
        tones = [t for t in linked.get(brand, [post.tone]) if t is not None]
        counts = [0, 0, 0]
        for label, _ in tones:
            counts[label] += 1
        out.append(
            BrandMention(
                brand=brand,
                post_id=post.post_id,
                time_ms=post.time_ms,
                author=post.author,
                mentions=max(1, len(linked.get(brand, ()))),
                sentiment=round(sum(score for _, score in tones), 6),
                tone=(counts[0], counts[1], counts[2]),
                co_brands=tuple(b for b in brands if b != brand),
                co_entities=entities,
                source=source,
                source_offset=source_offset,
            )
        )
    return out


def brand_partition(brand: str, partitions: int) -> int:
    """The by-brand partition of a brand: a stable hash, the same in every process and run."""
    return zlib.crc32(brand.encode()) % partitions


def encode_batch(mentions: list[BrandMention], sources: int) -> bytes:
    """A by-brand record: mentions for one by-brand partition and the number of ``entities`` partitions.

    The mentions keep their ``entities`` order: within each source partition, that order is what lets
    stage two follow event time per source (see ``panes``).
    """
    rows = [
        [m.brand, m.post_id, m.time_ms, m.author, m.mentions, m.sentiment, *m.tone, m.co_brands,
         m.co_entities, m.source, m.source_offset]
        for m in mentions
    ]  # fmt: skip
    return orjson.dumps({"sources": sources, "mentions": rows})


def decode_batch(raw: bytes) -> tuple[list[BrandMention], int]:
    """Inverse of ``encode_batch``: the mentions and the partition count of ``entities``.

    Rows written before mentions carried a ``tone`` (10 fields, a post score nobody filled) are read with
    no sentiment.
    """
    data = orjson.loads(raw)
    mentions = []
    for row in data["mentions"]:
        if len(row) == 10:
            row = [*row[:5], 0.0, 0, 0, 0, *row[6:]]
        brand, post, time_ms, author, n, s_sum, neg, neu, pos, co_b, co_e, source, offset = row
        mentions.append(
            BrandMention(
                brand,
                post,
                time_ms,
                author,
                n,
                s_sum,
                (neg, neu, pos),
                tuple(co_b),
                tuple(co_e),
                source,
                offset,
            )
        )
    return mentions, int(data["sources"])


def _tone(data: dict[str, Any]) -> Tone | None:
    """``sentiment_label`` and ``sentiment`` of an event or entity (``None``: none); ``ValueError``: bad."""
    label, score = data.get("sentiment_label"), data.get("sentiment")
    if label is None:
        if score is not None and not isinstance(score, int | float):
            raise ValueError("sentiment must be a number")
        return None  # a score alone (older events) is not a polarity
    if label not in LABELS:
        raise ValueError(f"sentiment_label must be one of {', '.join(LABELS)}")
    if not isinstance(score, int | float) or not -1.0 <= score <= 1.0:
        raise ValueError("sentiment must be a number in [-1, 1] when sentiment_label is given")
    return LABELS.index(label), float(score)


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def _event_time_ms(data: dict[str, Any], record_timestamp_ms: int | None) -> int:
    created = data.get("created_at")
    if created is not None:
        if not isinstance(created, str):
            raise ValueError("created_at must be an ISO 8601 string")
        moment = datetime.fromisoformat(created)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    origin = data.get("origin")
    if isinstance(origin, dict) and isinstance(origin.get("timestamp_ms"), int):
        return int(origin["timestamp_ms"])
    if record_timestamp_ms is not None:
        return record_timestamp_ms
    processed = data.get("processed_at")
    if not isinstance(processed, str):
        raise ValueError("processed_at must be an ISO 8601 string")
    moment = datetime.fromisoformat(processed)
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)
