"""Message contracts: ``Post`` in; ``EntityEvent``, ``Rejected``, ``BrandAggregate`` and ``BrandAlert`` out.

Every value is UTF-8 JSON. Input is validated at the edge by ``parse_post``, a pure function that either
returns a ``Post`` or raises ``InvalidPost`` with a stable ``code``; the worker turns the latter into a
``Rejected`` record for the dead-letter topic. The JSON Schemas under ``topics/schemas/`` are generated from
these models (``stream-ner topics schemas``) and a test keeps them in step.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from stream_ner.errors import InvalidPost
from stream_ner.model.entity import Entity, Sentiment

_FROZEN = ConfigDict(frozen=True, extra="forbid")

DLQ_VALUE_LIMIT = 65_536
"""Bytes of an unusable value kept in its ``Rejected`` record."""

SentimentLabel = Literal["negative", "neutral", "positive"]


class Post(BaseModel):
    """A social-media post as users produce it to ``raw-posts``.

    Unknown top-level fields are rejected; free-form data belongs in ``metadata``, which is carried
    through to the entity event untouched.
    """

    model_config = _FROZEN

    id: StrictStr = Field(min_length=1, max_length=512)
    text: StrictStr
    created_at: datetime | None = Field(default=None, description="When the post was written (ISO 8601).")
    author: StrictStr | None = None
    lang: StrictStr | None = None
    source: StrictStr | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class Origin(BaseModel):
    """Where a record came from in Kafka; lets any consumer trace an output back to its input."""

    model_config = _FROZEN

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = Field(description="The input record's Kafka timestamp.")


class ModelRef(BaseModel):
    """The model that produced an event."""

    model_config = _FROZEN

    name: str
    version: str


class EntityMention(BaseModel):
    """An entity in an event.

    A span of ``EntityEvent.text`` (end exclusive), its label and score, and the canonical brand id it
    links to, if any.
    """

    model_config = _FROZEN

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    label: str
    score: float = Field(ge=0.0, le=1.0)
    text: str
    brand: str | None = None
    sentiment: float | None = Field(
        default=None, ge=-1.0, le=1.0, description="Sentiment toward the span: P(positive) - P(negative)."
    )
    sentiment_label: SentimentLabel | None = Field(
        default=None, description="The most probable polarity toward the span."
    )

    @classmethod
    def of(cls, entity: Entity, brand: str | None = None) -> EntityMention:
        """Wrap a model ``Entity``, with its sentiment when the model gave one."""
        score, label = _tone(entity.sentiment)
        return cls(
            start=entity.start,
            end=entity.end,
            label=entity.label,
            score=round(float(entity.score), 4),
            text=entity.text,
            brand=brand,
            sentiment=score,
            sentiment_label=label,
        )


class EntityEvent(BaseModel):
    """Exactly one per valid post on ``entities``, keyed by post id, also when no entity was found."""

    model_config = _FROZEN

    post_id: str
    text: str
    entities: list[EntityMention]
    brands: list[str] = Field(default_factory=list, description="Canonical brand ids mentioned, sorted.")
    created_at: datetime | None
    author: str | None
    lang: str | None
    source: str | None
    metadata: dict[str, Any]
    sentiment: float | None = Field(
        default=None, ge=-1.0, le=1.0, description="Post sentiment, P(positive) - P(negative), when known."
    )
    sentiment_label: SentimentLabel | None = Field(
        default=None, description="The post's most probable polarity, when known."
    )
    model: ModelRef
    origin: Origin
    processed_at: datetime


def _tone(sentiment: Sentiment | None) -> tuple[float | None, SentimentLabel | None]:
    """A model ``Sentiment`` as the two event fields: score (4 decimals) and label."""
    if sentiment is None:
        return None, None
    return round(min(1.0, max(-1.0, float(sentiment.score))), 4), sentiment.label  # type: ignore[return-value]


def event_tone(sentiment: Sentiment | None) -> dict[str, Any]:
    """The ``sentiment`` and ``sentiment_label`` fields of an ``EntityEvent`` for a post's sentiment."""
    score, label = _tone(sentiment)
    return {"sentiment": score, "sentiment_label": label}


class Rejected(BaseModel):
    """A message that could not be processed, on the dead-letter topic with its reason.

    ``value`` holds the original bytes: as text when they are UTF-8 (``value_encoding="utf-8"``), else
    base64 (``"base64"``); ``None`` for a Kafka null value. The same holds for ``key``. A value larger than
    ``DLQ_VALUE_LIMIT`` bytes is cut to that size (``value_truncated``), so that an oversize post cannot
    make its own dead-letter record undeliverable; the whole original stays at ``origin``.
    """

    model_config = _FROZEN

    code: str
    reason: str
    value: str | None
    value_encoding: Literal["utf-8", "base64", "null"]
    value_bytes: int = Field(description="Size of the original value; it stays readable at ``origin``.")
    value_truncated: bool = Field(
        description=f"Only the first {DLQ_VALUE_LIMIT} bytes are kept in ``value``."
    )
    key: str | None
    key_encoding: Literal["utf-8", "base64", "null"]
    origin: Origin
    rejected_at: datetime


class Count(BaseModel):
    """A co-mentioned brand or entity and in how many posts of the window it appeared."""

    model_config = _FROZEN

    id: str
    count: int = Field(ge=0)


class BrandAggregate(BaseModel):
    """One brand in one window, on ``brand-aggregates`` (keyed by ``key()``) and in Redis.

    Counts are exact: ``mentions`` (linked mentions, at least one per post), ``posts`` (distinct post ids),
    ``authors`` (distinct authors; posts without an author are not counted here), and the mentions per
    polarity toward the brand (``negative``, ``neutral``, ``positive``: each linked entity's target
    sentiment; a brand found only by the catalog takes the post's). ``co_brands`` and
    ``co_entities`` are the ``top_n`` most frequent, counted in posts. ``final`` is true once the window is
    closed (stream time past its end plus grace): the values can no longer change. The aggregation stage
    builds these records as plain dicts in its hot loop; this model is their schema, and a test keeps the
    two in step.
    """

    model_config = _FROZEN

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
    sentiment_sum: float = Field(description="Sum of the sentiment scores of the mentions that had one.")
    sentiment_count: int = Field(ge=0, description="Mentions that had a sentiment.")
    sentiment_mean: float | None = Field(
        default=None, description="sentiment_sum / sentiment_count, in [-1, 1]; None: no sentiment yet."
    )
    negative: int = Field(default=0, ge=0, description="Mentions with a negative sentiment toward the brand.")
    neutral: int = Field(default=0, ge=0, description="Mentions with a neutral sentiment.")
    positive: int = Field(default=0, ge=0, description="Mentions with a positive sentiment.")
    net_sentiment: float | None = Field(
        default=None,
        description="(positive - negative) / (positive + negative), in [-1, 1]; None when both are 0.",
    )
    final: bool

    def key(self) -> str:
        """Record key on ``brand-aggregates``: ``<brand>|<window>|<window start, ISO 8601 UTC>``."""
        return f"{self.brand}|{self.window}|{iso_utc(self.window_start)}"


class BrandAlert(BaseModel):
    """A spike: a brand's mentions in a window rose above its trailing mean by more than ``threshold_z`` SD.

    On ``brand-alerts``, keyed by ``key()``: at most one alert per brand and window (the dashboard that
    detects it first claims the key in Redis, see ``stream_ner.dashboard.alerts``). ``mentions`` is the
    count when the spike was detected, in a window that may still be open. The trailing mean and standard
    deviation are over the ``history`` previous windows of the same size that had data; the deviation used
    in ``score`` is at least 1 mention.
    """

    model_config = _FROZEN

    brand: str = Field(description="Catalog brand id, or '~' + surface form for an unknown brand.")
    window: str = Field(description="Window family name, e.g. '1m'.")
    window_start: datetime
    window_end: datetime = Field(description="Exclusive.")
    mentions: int = Field(ge=0)
    trailing_mean: float = Field(ge=0.0)
    trailing_stdev: float = Field(ge=0.0)
    history: int = Field(ge=0, description="Previous windows in the mean.")
    score: float = Field(description="(mentions - mean) / max(stdev, 1).")
    threshold_z: float = Field(description="The spike rule's Z.")
    min_mentions: int = Field(description="The spike rule's minimum count.")
    detected_at: datetime

    def key(self) -> str:
        """Record key on ``brand-alerts``: ``<brand>|<window>|<window start, ISO 8601 UTC>``."""
        return f"{self.brand}|{self.window}|{iso_utc(self.window_start)}"


def iso_utc(moment: datetime) -> str:
    """``2024-05-01T12:00:00Z``: the form of window starts in keys."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_MISSING = {"id": "missing_id", "text": "missing_text"}


def parse_post(value: bytes | None, max_text_chars: int) -> Post:
    """Validate one ``raw-posts`` value; raise ``InvalidPost`` with a stable code when it is unusable.

    Codes: ``null_value``, ``too_large``, ``not_utf8``, ``invalid_json``, ``not_an_object``,
    ``missing_id``, ``missing_text``, ``unknown_field``, ``invalid_field``, ``empty_text``,
    ``text_too_long``.
    """
    if value is None:
        raise InvalidPost("null_value", "the record has a null value")
    # A post may carry metadata, but a value far beyond the text limit is refused before parsing it.
    if len(value) > 4 * max_text_chars + 65_536:
        raise InvalidPost(
            "too_large", f"value of {len(value)} bytes exceeds the limit for {max_text_chars} chars"
        )
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPost("not_utf8", f"value is not UTF-8: {exc}") from None
    try:
        post = Post.model_validate_json(value)
    except ValidationError as exc:
        raise _invalid(exc) from None
    if not post.text.strip():
        raise InvalidPost("empty_text", "text is empty or whitespace only")
    if len(post.text) > max_text_chars:
        raise InvalidPost(
            "text_too_long", f"text has {len(post.text)} characters; the limit is {max_text_chars}"
        )
    return post


def _invalid(exc: ValidationError) -> InvalidPost:
    error = exc.errors(include_url=False)[0]
    kind, loc = error["type"], error["loc"]
    field = str(loc[0]) if loc else ""
    if kind == "json_invalid":
        return InvalidPost("invalid_json", f"value is not valid JSON: {error['msg']}")
    if kind == "model_type" or (not loc and kind.endswith("_type")):
        return InvalidPost("not_an_object", "value must be a JSON object")
    if kind == "missing":
        return InvalidPost(_MISSING.get(field, "invalid_field"), f"required field {field!r} is missing")
    if kind == "extra_forbidden":
        return InvalidPost("unknown_field", f"unknown field {field!r}; put free-form data in 'metadata'")
    return InvalidPost("invalid_field", f"field {'.'.join(map(str, loc))!r}: {error['msg']}")


def encode_bytes(raw: bytes | None) -> tuple[str | None, Literal["utf-8", "base64", "null"]]:
    """Represent original bytes in JSON: text when UTF-8, base64 otherwise, ``None`` for null."""
    if raw is None:
        return None, "null"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def reject(
    error: InvalidPost, value: bytes | None, key: bytes | None, origin: Origin, now: datetime | None = None
) -> Rejected:
    """Build the dead-letter record for one unusable input."""
    kept = value[:DLQ_VALUE_LIMIT] if value is not None else None
    text, text_encoding = encode_bytes(kept)
    key_text, key_encoding = encode_bytes(key)
    return Rejected(
        code=error.code,
        reason=error.reason,
        value=text,
        value_encoding=text_encoding,
        value_bytes=len(value) if value is not None else 0,
        value_truncated=value is not None and len(value) > DLQ_VALUE_LIMIT,
        key=key_text,
        key_encoding=key_encoding,
        origin=origin,
        rejected_at=now or datetime.now(UTC),
    )
