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
    negative: int
    neutral: int
    positive: int
    net_sentiment: float | None
    final: bool


@dataclass(frozen=True)
class Leaderboard:
    """The top brands of one window, in the order asked for (``SORTS``; ties by brand id)."""

    window: str
    start: int
    end: int
    rows: list[Row]


def find_window(client: Any, keys: Keys, window: str, at: int | None) -> int | None:
    """Start (epoch s) of the window to show: the latest one, or the latest starting at or before ``at``."""
    upper = "+inf" if at is None else str(at)
    found = client.zrevrangebyscore(keys.windows(window), upper, "-inf", start=0, num=1)
    return int(found[0]) if found else None


SORTS = ("mentions", "net-sentiment")
"""Orders of ``read_top``: most mentions first; lowest net sentiment first (brands that have one)."""


def read_top(
    client: Any, prefix: str, window: str, at: int | None = None, n: int = 10, sort: str = "mentions"
) -> Leaderboard | None:
    """The leaderboard of ``window`` containing ``at`` (epoch s; ``None``: the latest window), or ``None``.

    ``sort`` is one of ``SORTS``; ``net-sentiment`` lists only brands with a positive or negative mention.
    """
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
    from redis.exceptions import ConnectionError, TimeoutError

    keys = Keys(prefix)
    try:
        start = find_window(client, keys, window, at)
        if start is None:
            return None
        if sort == "mentions":
            members = client.zrange(keys.top(window, start), 0, -1, withscores=True)
            ranked = [m for m, _ in sorted(((m.decode(), -s) for m, s in members), key=_by_score)[:n]]
        else:
            members = client.zrange(keys.net(window, start), 0, -1, withscores=True)
            ranked = [m for m, _ in sorted(((m.decode(), s) for m, s in members), key=_by_score)[:n]]
        pipe = client.pipeline(transaction=False)
        for brand in ranked:
            pipe.hmget(keys.agg(window, start, brand), *_FIELDS)
        fields = pipe.execute()
    except (ConnectionError, TimeoutError) as exc:
        raise RedisUnavailable(f"cannot read redis: {exc}") from exc
    rows, end = [], start
    for brand, values in zip(ranked, fields, strict=True):
        got = dict(zip(_FIELDS, (v.decode() if isinstance(v, bytes) else v for v in values), strict=True))
        rows.append(
            Row(
                brand=brand,
                mentions=int(got["mentions"] or 0),
                posts=int(got["posts"] or 0),
                authors=int(got["authors"] or 0),
                sentiment_mean=_maybe_float(got["sentiment_mean"]),
                negative=int(got["negative"] or 0),
                neutral=int(got["neutral"] or 0),
                positive=int(got["positive"] or 0),
                net_sentiment=_maybe_float(got["net_sentiment"]),
                final=bool(int(got["final"] or 0)),
            )
        )
        end = max(end, int(got["end"] or start))
    if at is not None and rows and end <= at:
        return None
    return Leaderboard(window, start, end, rows)


_FIELDS = (
    "mentions", "posts", "authors", "sentiment_mean", "negative", "neutral", "positive", "net_sentiment",
    "final", "end",
)  # fmt: skip


def _by_score(member: tuple[str, float]) -> tuple[float, str]:
    return member[1], member[0]


def _maybe_float(value: str | None) -> float | None:
    return float(value) if value else None
