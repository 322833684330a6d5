"""The Redis reading layer: leaderboards and brand pages from the keys the aggregator writes.

The key layout is the one documented in ``stream_ner.aggregate.redis_sink`` (this module only reads it).
Each read is split into a pure planning or building step and a few pipelined round trips:

- ``plan_board`` picks, from the window starts known in ``P:windows:W``, the **current window** of a family
  (the one holding the newest event that ends soonest: the newest start for tumbling windows, the newest
  minus ``size - step`` for hopping ones, so a 1 h window shows the last hour, not the last 5 minutes), the
  **previous window** (the same size, ending where the current one starts) and the **history** (the
  ``spike_history`` windows before that, non-overlapping, that had any data).
- ``build_board`` turns the leaderboard sorted sets and the hashes of the listed brands into a ``Board``:
  share of voice, change against the previous window, authors, sentiment, and spikes (``spikes.detect``)
  for every brand of the window, listed even when below the top rows.
- ``series_starts`` and ``build_brand`` do the same for one brand: mentions and sentiment per window over
  the last hour (windows under an hour long) or day, and the co-mentions of the current window.

Sentiment: a brand's ``sentiment`` is the mean of the posts that carried one (``sentiment_sum /
sentiment_count``) and ``None`` when none did; the board's ``sentiment_posts`` is 0 when no listed brand
has any, and the page then says "no sentiment yet". A row's ``polarity`` counts its mentions by the
sentiment toward the brand (negative, neutral, positive), so a mean near 0 tells a split brand from a
neutral one.

Redis errors surface as ``RedisUnavailable``; the caller retries.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream_ner.aggregate.redis_sink import Keys
from stream_ner.dashboard.spikes import Spike, SpikeRule, detect
from stream_ner.errors import RedisUnavailable

_DETAIL_FIELDS = ("authors", "posts", "sentiment_sum", "sentiment_count", "negative", "neutral", "positive")
_POINT_FIELDS = ("mentions", "posts", "authors", "sentiment_sum", "sentiment_count")


@dataclass(frozen=True, slots=True)
class Family:
    """A window family as configured (``aggregate.windows``)."""

    name: str
    size_s: int
    step_s: int

    @property
    def span_s(self) -> int:
        """How far back a brand page looks: an hour for windows under an hour, else a day."""
        return 3600 if self.size_s < 3600 else 86_400


@dataclass(frozen=True, slots=True)
class BoardPlan:
    """Which windows a leaderboard reads: current, previous (``None`` without data) and history."""

    current: int
    previous: int | None
    history: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Row:
    """One brand on a leaderboard."""

    brand: str
    name: str
    unknown: bool
    mentions: int
    share: float  # of all brand mentions in the window, 0..1
    previous: int | None  # mentions in the previous window; None when that window has no data
    change: float | None  # (mentions - previous) / previous; None without a previous count
    authors: int
    posts: int
    sentiment: float | None  # mean in [-1, 1] of the posts that carried one
    sentiment_posts: int
    polarity: tuple[int, int, int]  # mentions negative, neutral and positive toward the brand
    spike: Spike | None


@dataclass(frozen=True, slots=True)
class Board:
    """The leaderboard of one window, most mentioned first (ties by brand id)."""

    window: str
    start: int
    end: int
    previous_start: int | None
    history: int  # previous windows with data behind the spike rule
    total_mentions: int
    brands: int  # brands mentioned in the window
    sentiment_posts: int  # over the listed rows; 0: no sentiment yet
    rows: list[Row]
    spikes: list[str]
    read_at_ms: int = 0


@dataclass(frozen=True, slots=True)
class Point:
    """One window of a brand's series; ``mentions`` is 0 in a window with data but none for the brand."""

    start: int
    mentions: int
    posts: int
    authors: int
    sentiment: float | None
    sentiment_posts: int


@dataclass(frozen=True, slots=True)
class Count:
    """A co-mentioned brand or entity and its count in the window (in posts)."""

    id: str
    name: str
    label: str | None  # entity label (PER, LOC, ...) for co-mentioned entities
    count: int


@dataclass(frozen=True, slots=True)
class BrandPage:
    """One brand in one window family: its series and the co-mentions of the current window."""

    brand: str
    name: str
    unknown: bool
    window: str
    start: int | None
    end: int | None
    points: list[Point]
    co_brands: list[Count]
    co_entities: list[Count]
    sample_post_ids: list[str] = field(default_factory=list)


def display_name(brand: str, names: Mapping[str, str]) -> str:
    """The catalog name of a brand, or the surface form of an unknown one (``~acme`` -> ``acme``)."""
    return names.get(brand) or brand.removeprefix("~")


def plan_board(starts: Sequence[int], family: Family, history: int) -> BoardPlan | None:
    """The windows of a leaderboard, from the known window starts of the family (any order)."""
    if not starts:
        return None
    known = set(starts)
    newest = max(known)
    current = newest - (family.size_s - family.step_s)
    if current not in known:  # cannot happen with the aggregator's writes; stay on what exists
        current = newest
    previous = current - family.size_s
    before = [previous - k * family.size_s for k in range(1, history + 1)]
    return BoardPlan(
        current=current,
        previous=previous if previous in known else None,
        history=tuple(s for s in [previous, *before][:history] if s in known),
    )


def scores(members: Sequence[tuple[bytes | str, float]]) -> dict[str, int]:
    """A ``ZRANGE ... WITHSCORES`` reply as {member: int score}."""
    return {(m.decode() if isinstance(m, bytes) else m): int(s) for m, s in members}


def ranked(mentions: Mapping[str, int]) -> list[tuple[str, int]]:
    """Brands by mentions, most first, ties by brand id."""
    return sorted(mentions.items(), key=lambda item: (-item[1], item[0]))


def listed(
    mentions: Mapping[str, int], history: Sequence[Mapping[str, int]], rows: int, rule: SpikeRule
) -> tuple[list[str], dict[str, Spike]]:
    """The brands a board lists (top ``rows`` and every spiking brand, in rank order) and the spikes."""
    spikes = {
        brand: spike
        for brand, count in mentions.items()
        if (spike := detect(count, [h.get(brand, 0) for h in history], rule)) is not None
    }
    order = ranked(mentions)
    shown = [brand for rank, (brand, _) in enumerate(order) if rank < rows or brand in spikes]
    return shown, spikes


def _int(raw: bytes | str | None) -> int:
    return int(raw) if raw not in (None, b"", "") else 0


def _float(raw: bytes | str | None) -> float:
    return float(raw) if raw not in (None, b"", "") else 0.0


def _mean(total: float, count: int) -> float | None:
    return round(total / count, 4) if count else None


def build_board(
    family: Family,
    plan: BoardPlan,
    mentions: Mapping[str, int],
    previous: Mapping[str, int] | None,
    history: Sequence[Mapping[str, int]],
    details: Mapping[str, Sequence[bytes | str | None]],
    names: Mapping[str, str],
    rows: int,
    rule: SpikeRule,
    read_at_ms: int = 0,
) -> Board:
    """A leaderboard from its sorted sets (brand -> mentions) and ``HMGET`` replies of ``_DETAIL_FIELDS``."""
    shown, spikes = listed(mentions, history, rows, rule)
    total = sum(mentions.values())
    out: list[Row] = []
    for brand in shown:
        count = mentions[brand]
        reply = details.get(brand) or (None,) * len(_DETAIL_FIELDS)
        authors, posts, s_sum, s_count, negative, neutral, positive = reply
        before = None if previous is None else previous.get(brand, 0)
        n_sentiment = _int(s_count)
        out.append(
            Row(
                brand=brand,
                name=display_name(brand, names),
                unknown=brand.startswith("~"),
                mentions=count,
                share=round(count / total, 4) if total else 0.0,
                previous=before,
                change=round((count - before) / before, 4) if before else None,
                authors=_int(authors),
                posts=_int(posts),
                sentiment=_mean(_float(s_sum), n_sentiment),
                sentiment_posts=n_sentiment,
                polarity=(_int(negative), _int(neutral), _int(positive)),
                spike=spikes.get(brand),
            )
        )
    return Board(
        window=family.name,
        start=plan.current,
        end=plan.current + family.size_s,
        previous_start=plan.previous,
        history=len(plan.history),
        total_mentions=total,
        brands=len(mentions),
        sentiment_posts=sum(row.sentiment_posts for row in out),
        rows=out,
        spikes=[brand for brand in shown if brand in spikes],
        read_at_ms=read_at_ms,
    )


def series_starts(family: Family, current: int) -> list[int]:
    """Non-overlapping window starts over the family's span, oldest first, ending with ``current``."""
    n = max(1, min(family.span_s // family.size_s, 500))
    return [current - k * family.size_s for k in range(n - 1, -1, -1)]


def _counts(items: Sequence[Mapping[str, Any]], names: Mapping[str, str], entities: bool) -> list[Count]:
    out = []
    for item in items:
        ident = str(item["id"])
        label, _, text = ident.partition(":") if entities else (None, "", ident)
        out.append(
            Count(
                ident,
                text if entities else display_name(ident, names),
                label or None,
                int(item["count"]),
            )
        )
    return out


def build_brand(
    family: Family,
    brand: str,
    current: int | None,
    starts: Sequence[int],
    known: set[int],
    points: Sequence[Sequence[bytes | str | None]],
    record: bytes | str | None,
    names: Mapping[str, str],
) -> BrandPage:
    """A brand page from ``HMGET`` replies of ``_POINT_FIELDS`` per start and the current ``record`` JSON.

    A window the family has no data for at all is left out of the series (a gap, not a zero).
    """
    series = []
    for start, (mentions, posts, authors, s_sum, s_count) in zip(starts, points, strict=True):
        if start not in known:
            continue
        n = _int(s_count)
        series.append(Point(start, _int(mentions), _int(posts), _int(authors), _mean(_float(s_sum), n), n))
    data = orjson.loads(record) if record else {}
    return BrandPage(
        brand=brand,
        name=display_name(brand, names),
        unknown=brand.startswith("~"),
        window=family.name,
        start=current,
        end=None if current is None else current + family.size_s,
        points=series,
        co_brands=_counts(data.get("co_brands", []), names, entities=False),
        co_entities=_counts(data.get("co_entities", []), names, entities=True),
        sample_post_ids=[str(p) for p in data.get("sample_post_ids", [])],
    )


class Store:
    """Reads boards and brand pages from Redis (``redis.asyncio``), under one key prefix."""

    def __init__(self, client: Any, prefix: str, names: Mapping[str, str]) -> None:
        self.client = client
        self.keys = Keys(prefix)
        self.names = names

    async def _starts(self, family: Family, since: float, now: float) -> list[int]:
        members = await self.client.zrangebyscore(self.keys.windows(family.name), since, now)
        return [int(m) for m in members]

    async def read_board(self, family: Family, rows: int, rule: SpikeRule, history: int) -> Board | None:
        """The current leaderboard of ``family``; ``None`` when Redis has no window of it yet."""
        from redis.exceptions import RedisError

        now = time.time()
        reach = (history + 2) * family.size_s + family.size_s
        try:
            plan = plan_board(await self._starts(family, now - reach, now), family, history)
            if plan is None:
                return None
            windows = (plan.current, *plan.history)  # the previous window leads the history when known
            pipe = self.client.pipeline(transaction=False)
            for start in windows:
                pipe.zrange(self.keys.top(family.name, start), 0, -1, withscores=True)
            read = dict(zip(windows, [scores(r) for r in await pipe.execute()], strict=True))
            mentions, past = read[plan.current], [read[s] for s in plan.history]
            previous = None if plan.previous is None else read.get(plan.previous, {})
            shown, _ = listed(mentions, past, rows, rule)
            pipe = self.client.pipeline(transaction=False)
            for brand in shown:
                pipe.hmget(self.keys.agg(family.name, plan.current, brand), *_DETAIL_FIELDS)
            details = dict(zip(shown, await pipe.execute(), strict=True))
        except (RedisError, OSError) as exc:
            raise RedisUnavailable(f"cannot read redis: {exc}") from exc
        return build_board(
            family, plan, mentions, previous, past, details, self.names, rows, rule, int(now * 1000)
        )

    async def read_brand(self, family: Family, brand: str) -> BrandPage:
        """The page of ``brand`` in ``family``: its series up to the current window and its co-mentions."""
        from redis.exceptions import RedisError

        now = time.time()
        try:
            known = set(await self._starts(family, now - family.span_s - 2 * family.size_s, now))
            plan = plan_board(sorted(known), family, 0)
            current = None if plan is None else plan.current
            starts = [] if current is None else series_starts(family, current)
            pipe = self.client.pipeline(transaction=False)
            for start in starts:
                pipe.hmget(self.keys.agg(family.name, start, brand), *_POINT_FIELDS)
            if current is not None:
                pipe.hget(self.keys.agg(family.name, current, brand), "record")
            replies = await pipe.execute() if starts else []
        except (RedisError, OSError) as exc:
            raise RedisUnavailable(f"cannot read redis: {exc}") from exc
        record = replies[-1] if replies else None
        points = replies[:-1] if replies else []
        return build_brand(family, brand, current, starts, known, points, record, self.names)
