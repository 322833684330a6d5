"""Records of the aggregation stage: ``BrandMention`` (internal, by brand) and ``BrandAggregate`` (output).

``mentions_of`` is the pure re-keying step: one ``EntityEvent`` (keyed by post) in, one ``BrandMention``
per brand of the post out, carrying everything a per-brand window needs so the by-brand stage never looks
back at the post. ``BrandAggregate`` is what ``brand-aggregates`` and Redis hold per brand and window:
absolute values, so the latest record per key is the whole truth.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from stream_ner.brands.normalize import fold
from stream_ner.messages import EntityEvent


@dataclass(frozen=True, slots=True)
class BrandMention:
    """A post as seen by one of the brands it mentions, on the internal by-brand topic.

    ``time_ms`` is the event time: the post's ``created_at``, else the Kafka timestamp of the ``raw-posts``
    record, else that of the ``entities`` record. ``mentions`` counts the entities linked to the brand, at
    least 1 (a brand found only in untagged text counts once per post). ``source`` is the ``entities``
    partition the post was read from and ``sources`` how many partitions that topic has: stream time is
    tracked per source partition (see ``state``).
    """

    brand: str
    post_id: str
    time_ms: int
    author: str | None
    mentions: int
    sentiment: float | None
    co_brands: tuple[str, ...]
    co_entities: tuple[str, ...]
    source: int = 0
    sources: int = 1

    def to_json(self) -> bytes:
        """UTF-8 JSON value for the by-brand topic."""
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> BrandMention:
        """Inverse of ``to_json``."""
        data = json.loads(raw)
        data["co_brands"] = tuple(data["co_brands"])
        data["co_entities"] = tuple(data["co_entities"])
        return cls(**data)


def event_time_ms(event: EntityEvent, record_timestamp_ms: int | None) -> int:
    """The event time of a post (see ``BrandMention``)."""
    if event.created_at is not None:
        created = event.created_at if event.created_at.tzinfo else event.created_at.replace(tzinfo=UTC)
        return int(created.timestamp() * 1000)
    if event.origin.timestamp_ms is not None:
        return event.origin.timestamp_ms
    if record_timestamp_ms is not None:
        return record_timestamp_ms
    return int(event.processed_at.timestamp() * 1000)


def mentions_of(
    event: EntityEvent, record_timestamp_ms: int | None = None, source: int = 0, sources: int = 1
) -> list[BrandMention]:
    """One ``BrandMention`` per brand of the post, in brand order; none when it mentions no brand.

    Co-entities are the post's entities not linked to a brand, as ``LABEL:folded text``.
    """
    brands = sorted(set(event.brands) | {e.brand for e in event.entities if e.brand})
    if not brands:
        return []
    time_ms = event_time_ms(event, record_timestamp_ms)
    entities = sorted({f"{e.label}:{fold(e.text).strip()}" for e in event.entities if not e.brand})
    return [
        BrandMention(
            brand=brand,
            post_id=event.post_id,
            time_ms=time_ms,
            author=event.author,
            mentions=max(1, sum(1 for e in event.entities if e.brand == brand)),
            sentiment=event.sentiment,
            co_brands=tuple(b for b in brands if b != brand),
            co_entities=tuple(entities),
            source=source,
            sources=sources,
        )
        for brand in brands
    ]


class Count(BaseModel):
    """A co-mentioned brand or entity and in how many posts of the window it appeared."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    count: int = Field(ge=0)


class BrandAggregate(BaseModel):
    """One brand in one window, on ``brand-aggregates`` (keyed by ``key()``) and in Redis.

    Counts are exact: ``mentions`` (linked mentions, at least one per post), ``posts`` (distinct post ids),
    ``authors`` (distinct authors; posts without an author are not counted here). ``co_brands`` and
    ``co_entities`` are the ``top_n`` most frequent, counted in posts. ``final`` is true once the window is
    closed (stream time past its end plus grace): the values can no longer change.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    brand: str = Field(description="Catalog brand id, or '~' + surface form for an unknown brand.")
    unknown: bool = Field(description="True when the brand is not in the catalog.")
    window: str = Field(description="Window family name, e.g. '1m'.")
    window_start: datetime
    window_end: datetime = Field(description="Exclusive.")
    mentions: int = Field(ge=0)
    posts: int = Field(ge=0)
    authors: int = Field(ge=0)
    co_brands: list[Count]
    co_entities: list[Count]
    sample_post_ids: list[str]
    sentiment_sum: float
    sentiment_count: int = Field(ge=0, description="Posts that carried a sentiment.")
    final: bool

    def key(self) -> str:
        """Record key on ``brand-aggregates``: ``<brand>|<window>|<window start, ISO 8601 UTC>``."""
        return f"{self.brand}|{self.window}|{iso(self.window_start)}"


def iso(moment: datetime) -> str:
    """``2024-05-01T12:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_ms(ms: int) -> datetime:
    """UTC datetime of epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, UTC)
