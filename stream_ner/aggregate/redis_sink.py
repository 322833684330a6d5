"""Brand aggregates in Redis, laid out for dashboards; written with absolute values only.

Key layout (``P`` is ``redis.key_prefix``; ``W`` a window family name such as ``1m``; ``S`` a window start
in epoch seconds; ``B`` a brand id, unknown brands starting with ``~``)::

    P:agg:W:S:B      HASH    one brand in one window: brand, window, start, end (epoch s), mentions, posts,
                             authors, sentiment_sum, sentiment_count, sentiment_mean, negative, neutral,
                             positive, net_sentiment (empty: none yet), co_brands, co_entities, samples
                             (JSON lists), final (0/1), record (the full BrandAggregate JSON)
    P:top:W:S        ZSET    leaderboard of the window: member B, score = mentions
    P:net:W:S        ZSET    brands of the window by net sentiment: member B, score = net_sentiment
                             (brands with a positive or negative mention only; lowest = most negative)
    P:series:W:B     ZSET    per-brand time series: member S, score S (read the hashes P:agg:W:S:B)
    P:windows:W      ZSET    window starts known for W: member S, score S
    P:updates        STREAM  one entry per written record: brand, window, start, mentions, final

Every key but the stream has a TTL of ``aggregate.redis_ttl_s``, set when this process first writes the
window; the sorted-set indexes drop members older than that TTL in event time. A batch is written in one
MULTI/EXEC pipeline with HSET/ZADD of absolute values, never increments (one ZADD per leaderboard and index
per batch), so writing the same record twice, or an older batch replayed after a crash followed by the
newer one, leaves the same state. Only the fields
that changed since this process last wrote the window are sent (all of them on its first write, so a
restarted process rewrites everything it holds). The stream only announces updates: a replay may
announce a record twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from stream_ner.aggregate.outbox import Record
from stream_ner.errors import RedisUnavailable


def epoch_s(iso: str) -> int:
    """Whole seconds since the epoch of ``2024-05-01T12:00:00Z``."""
    return int(datetime.fromisoformat(iso).timestamp())


class Keys:
    """Names of the Redis keys under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def agg(self, window: str, start: int, brand: str) -> str:
        """Hash of one brand in one window."""
        return f"{self.prefix}:agg:{window}:{start}:{brand}"

    def top(self, window: str, start: int) -> str:
        """Leaderboard of one window."""
        return f"{self.prefix}:top:{window}:{start}"

    def net(self, window: str, start: int) -> str:
        """Brands of one window by net sentiment."""
        return f"{self.prefix}:net:{window}:{start}"

    def series(self, window: str, brand: str) -> str:
        """Window starts of one brand."""
        return f"{self.prefix}:series:{window}:{brand}"

    def windows(self, window: str) -> str:
        """Window starts of one family."""
        return f"{self.prefix}:windows:{window}"

    def updates(self) -> str:
        """Stream announcing every write."""
        return f"{self.prefix}:updates"


def hash_fields(record: Record) -> dict[str, str | int | float]:
    """The fields of ``P:agg:W:S:B`` for one record."""
    return {
        "brand": record["brand"],
        "window": record["window"],
        "start": epoch_s(record["window_start"]),
        "end": epoch_s(record["window_end"]),
        "mentions": record["mentions"],
        "posts": record["posts"],
        "authors": record["authors"],
        "sentiment_sum": record["sentiment_sum"],
        "sentiment_count": record["sentiment_count"],
        "sentiment_mean": _or_empty(record["sentiment_mean"]),
        "negative": record["negative"],
        "neutral": record["neutral"],
        "positive": record["positive"],
        "net_sentiment": _or_empty(record["net_sentiment"]),
        "co_brands": orjson.dumps(record["co_brands"]).decode(),
        "co_entities": orjson.dumps(record["co_entities"]).decode(),
        "samples": orjson.dumps(record["sample_post_ids"]).decode(),
        "final": int(record["final"]),
        "record": orjson.dumps(record).decode(),
    }


def _or_empty(value: float | None) -> float | str:
    return "" if value is None else value


def queue_writes(
    pipe: Any,
    keys: Keys,
    records: Sequence[Record],
    ttl_s: int,
    maxlen: int,
    written: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Queue the commands that store ``records`` on a redis pipeline (sync or asyncio alike).

    ``written`` holds the fields last written per hash key; only fields that differ are sent, and windows
    missing from it are written whole, with their TTL and index entries. Returns the fields now written,
    for the caller to keep once the pipeline succeeded.
    """
    written = {} if written is None else written
    now: dict[str, dict[str, Any]] = {}
    tops: dict[str, dict[str, float]] = {}  # one ZADD per leaderboard and index, however many records
    indexes: dict[str, dict[str, int]] = {}
    for record in records:
        start, brand, window = epoch_s(record["window_start"]), record["brand"], record["window"]
        agg = keys.agg(window, start, brand)
        fields = hash_fields(record)
        before = written.get(agg)
        changed = fields if before is None else {k: v for k, v in fields.items() if before.get(k) != v}
        now[agg] = fields
        if not changed:
            continue
        pipe.hset(agg, mapping=changed)
        if before is None or "mentions" in changed:
            tops.setdefault(keys.top(window, start), {})[brand] = record["mentions"]
        if "net_sentiment" in changed and record["net_sentiment"] is not None:
            tops.setdefault(keys.net(window, start), {})[brand] = record["net_sentiment"]
        if before is None:
            pipe.expire(agg, ttl_s)
            for index in (keys.series(window, brand), keys.windows(window)):
                indexes.setdefault(index, {})[str(start)] = start
        pipe.xadd(
            keys.updates(),
            {"brand": brand, "window": window, "start": start, "mentions": record["mentions"],
             "final": int(record["final"])},
            maxlen=maxlen,
            approximate=True,
        )  # fmt: skip
    for top, members in tops.items():
        pipe.zadd(top, members)
        pipe.expire(top, ttl_s)
    for index, starts in indexes.items():
        pipe.zadd(index, starts)
        pipe.zremrangebyscore(index, "-inf", f"({max(starts.values()) - ttl_s}")
        pipe.expire(index, ttl_s)
    return now


class RedisSink:
    """Writes batches of records to Redis; raises ``RedisUnavailable`` when Redis cannot be reached.

    Called by an ``Outbox`` that retries with backoff, so a failed batch is written again later, with the
    latest values of its keys.
    """

    def __init__(self, url: str, prefix: str, ttl_s: int, stream_maxlen: int) -> None:
        import redis.asyncio as aioredis

        self.keys = Keys(prefix)
        self.ttl_s = ttl_s
        self.stream_maxlen = stream_maxlen
        self.client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self.written: dict[str, dict[str, Any]] = {}

    async def write(self, records: Sequence[Record]) -> None:
        """Store the records atomically (one MULTI/EXEC), only the fields changed since the last write."""
        from redis.exceptions import ConnectionError, TimeoutError

        try:
            async with self.client.pipeline(transaction=True) as pipe:
                now = queue_writes(pipe, self.keys, records, self.ttl_s, self.stream_maxlen, self.written)
                await pipe.execute()
        except (ConnectionError, TimeoutError, OSError) as exc:
            self.written.clear()  # Redis may have lost what it had (a restart without persistence)
            raise RedisUnavailable(f"redis write failed: {exc}") from exc
        for key, fields in now.items():
            if fields["final"]:
                self.written.pop(key, None)  # written for the last time
            else:
                self.written[key] = fields

    async def close(self) -> None:
        """Release the connection pool."""
        await self.client.aclose()
