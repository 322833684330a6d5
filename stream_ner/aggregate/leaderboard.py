"""Read the brand leaderboard of one window back from Redis (the layout of ``redis_sink``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stream_ner.aggregate.redis_sink import Keys
from stream_ner.errors import RedisUnavailable


@dataclass(frozen=True)
class Row:
    """One brand of a leaderboard."""

    brand: str
    mentions: int
    posts: int
    authors: int
    sentiment_mean: float | None
    final: bool


@dataclass(frozen=True)
class Leaderboard:
    """The top brands of one window, most mentioned first (ties by brand id)."""

    window: str
    start: int
    end: int
    rows: list[Row]


def find_window(client: Any, keys: Keys, window: str, at: int | None) -> int | None:
    """Start (epoch s) of the window to show: the latest one, or the latest starting at or before ``at``."""
    upper = "+inf" if at is None else str(at)
    found = client.zrevrangebyscore(keys.windows(window), upper, "-inf", start=0, num=1)
    return int(found[0]) if found else None


def read_top(client: Any, prefix: str, window: str, at: int | None = None, n: int = 10) -> Leaderboard | None:
    """The leaderboard of ``window`` containing ``at`` (epoch s; ``None``: the latest window), or ``None``."""
    from redis.exceptions import ConnectionError, TimeoutError

    keys = Keys(prefix)
    try:
        start = find_window(client, keys, window, at)
        if start is None:
            return None
        members = client.zrange(keys.top(window, start), 0, -1, withscores=True)
        ranked = sorted(((m.decode(), int(s)) for m, s in members), key=lambda x: (-x[1], x[0]))[:n]
        pipe = client.pipeline(transaction=False)
        for brand, _ in ranked:
            pipe.hmget(
                keys.agg(window, start, brand),
                "posts",
                "authors",
                "sentiment_sum",
                "sentiment_count",
                "final",
                "end",
            )
        fields = pipe.execute()
    except (ConnectionError, TimeoutError) as exc:
        raise RedisUnavailable(f"cannot read redis: {exc}") from exc
    rows, end = [], start
    for (brand, mentions), (posts, authors, s_sum, s_count, final, w_end) in zip(ranked, fields, strict=True):
        count = int(s_count or 0)
        rows.append(
            Row(
                brand=brand,
                mentions=mentions,
                posts=int(posts or 0),
                authors=int(authors or 0),
                sentiment_mean=float(s_sum) / count if count else None,
                final=bool(int(final or 0)),
            )
        )
        end = max(end, int(w_end or start))
    if at is not None and rows and end <= at:
        return None
    return Leaderboard(window, start, end, rows)
