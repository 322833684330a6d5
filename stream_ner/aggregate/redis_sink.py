"""Brand aggregates in Redis, laid out for dashboards; written with absolute values only.

Key layout (``P`` is ``redis.key_prefix``; ``W`` a window family name such as ``1m``; ``S`` a window start
in epoch seconds; ``B`` a brand id, unknown brands starting with ``~``)::

    P:agg:W:S:B      HASH    one brand in one window: brand, window, start, end (epoch s), mentions, posts,
                             authors, sentiment_sum, sentiment_count, co_brands, co_entities, samples
                             (JSON lists), final (0/1), record (the full BrandAggregate JSON)
    P:top:W:S        ZSET    leaderboard of the window: member B, score = mentions
    P:series:W:B     ZSET    per-brand time series: member S, score S (read the hashes P:agg:W:S:B)
    P:windows:W      ZSET    window starts known for W: member S, score S
    P:updates        STREAM  one entry per written record: brand, window, start, mentions, final

Every key but the stream has a TTL of ``aggregate.redis_ttl_s``, renewed on each write; the sorted-set
indexes drop members older than that TTL in event time. A batch is written in one MULTI/EXEC pipeline with
HSET/ZADD of absolute values, never increments, so writing the same record twice, or an older batch replayed
after a crash followed by the newer one, leaves the same state. The stream only announces updates: a replay
may announce a record twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from stream_ner.aggregate.model import BrandAggregate
from stream_ner.errors import RedisUnavailable


def epoch_s(moment: datetime) -> int:
    """Whole seconds since the epoch."""
    return int(moment.timestamp())


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

    def series(self, window: str, brand: str) -> str:
        """Window starts of one brand."""
        return f"{self.prefix}:series:{window}:{brand}"

    def windows(self, window: str) -> str:
        """Window starts of one family."""
        return f"{self.prefix}:windows:{window}"

    def updates(self) -> str:
        """Stream announcing every write."""
        return f"{self.prefix}:updates"


def hash_fields(record: BrandAggregate) -> dict[str, str | int | float]:
    """The fields of ``P:agg:W:S:B`` for one record."""
    return {
        "brand": record.brand,
        "window": record.window,
        "start": epoch_s(record.window_start),
        "end": epoch_s(record.window_end),
        "mentions": record.mentions,
        "posts": record.posts,
        "authors": record.authors,
        "sentiment_sum": record.sentiment_sum,
        "sentiment_count": record.sentiment_count,
        "co_brands": json.dumps([c.model_dump() for c in record.co_brands]),
        "co_entities": json.dumps([c.model_dump() for c in record.co_entities]),
        "samples": json.dumps(record.sample_post_ids),
        "final": int(record.final),
        "record": record.model_dump_json(),
    }


def queue_writes(pipe: Any, keys: Keys, records: Sequence[BrandAggregate], ttl_s: int, maxlen: int) -> None:
    """Queue the commands that store ``records`` on a redis pipeline (sync or asyncio alike)."""
    for record in records:
        start = epoch_s(record.window_start)
        agg, top = keys.agg(record.window, start, record.brand), keys.top(record.window, start)
        series, windows = keys.series(record.window, record.brand), keys.windows(record.window)
        pipe.hset(agg, mapping=hash_fields(record))
        pipe.expire(agg, ttl_s)
        pipe.zadd(top, {record.brand: record.mentions})
        pipe.expire(top, ttl_s)
        for index in (series, windows):
            pipe.zadd(index, {str(start): start})
            pipe.zremrangebyscore(index, "-inf", f"({start - ttl_s}")
            pipe.expire(index, ttl_s)
        pipe.xadd(
            keys.updates(),
            {
                "brand": record.brand,
                "window": record.window,
                "start": start,
                "mentions": record.mentions,
                "final": int(record.final),
            },
            maxlen=maxlen,
            approximate=True,
        )


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

    async def write(self, records: Sequence[BrandAggregate]) -> None:
        """Store the records atomically (one MULTI/EXEC)."""
        from redis.exceptions import ConnectionError, TimeoutError

        try:
            async with self.client.pipeline(transaction=True) as pipe:
                queue_writes(pipe, self.keys, records, self.ttl_s, self.stream_maxlen)
                await pipe.execute()
        except (ConnectionError, TimeoutError, OSError) as exc:
            raise RedisUnavailable(f"redis write failed: {exc}") from exc

    async def close(self) -> None:
        """Release the connection pool."""
        await self.client.aclose()
