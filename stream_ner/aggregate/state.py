"""The pure core of the aggregation stage: apply one ``BrandMention`` to the state table, exactly once.

State lives in one key-value table (a faust table backed by a compacted changelog topic in production, a
dict in tests). Keys are JSON arrays, values JSON objects; every value records the partition ``q`` of the
by-brand topic it belongs to and the offset ``o`` of the last input record applied to it::

    ["clock", q]                         {"q", "o", "t", "src"}  stream time of partition q, see below
    ["w", window, start, brand]          {"q", "o", ...}      the aggregate of one brand in one window
    ["p", brand, post_id]                {"q", "o", "x"}      post already counted for the brand (x: expiry)
    ["a", window, start, brand, author]  {"q", "o", "x"}      author already counted in the window

Exactness. Input records of one partition are applied in offset order. The by-brand topic may hold the same
post twice (the inference worker and the re-keying stage are at-least-once), and after a crash the input is
replayed from the last committed offset, while some writes of the replayed records already reached the
changelog. ``apply`` is written so that the table ends the same as if every post had been applied once:

1. Writes of one record go to one changelog partition, in program order, and Kafka keeps that order; after a
   crash the table is restored to a *prefix* of the writes. Writes after the last committed offset may be
   durable, nothing before it is missing (faust flushes the producer before committing).
2. A value whose ``o`` is at least the current offset already includes this record: it is not touched again.
3. A post counts for a brand when no ``["p", brand, post]`` marker exists, or the marker was written by this
   very offset (a replay of a record whose marker was durable but whose windows were not). A marker written
   by another offset means a duplicate post: it is skipped entirely. Authors use the same rule per window.
4. The clock is written after the windows of the record, so a durable clock at offset ``o`` implies every
   write of ``o`` is durable, and replays recompute the stream time, hence the late/on-time decision, exactly
   as the first time. Keys are deleted only after the clock write that expires them.

Stream time (event-time watermark). The by-brand stage reads posts from every ``entities`` partition
mixed together, and those partitions are consumed at different speeds; taking the largest event time seen
would make a fast partition close windows the slow ones still feed. So ``src`` keeps the largest event time
per source partition and the stream time is the smallest of them, once every source partition has been seen
(``None`` before: nothing is late yet), and never moves backwards. An ``entities`` partition without
traffic therefore holds windows open: counts are still written on every update, only finality and
clean-up wait.

Late events: a post counts in each of its windows that is still open (stream time before ``end + grace``);
for windows already closed it is dropped and reported in ``Applied.late``.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from stream_ner.aggregate.model import BrandAggregate, BrandMention, Count, from_ms
from stream_ner.aggregate.windows import Window, closes_at, is_open, windows_of
from stream_ner.brands.normalize import UNKNOWN_PREFIX
from stream_ner.settings import AggregateSettings

Store = MutableMapping[str, Any]


def key(*parts: Any) -> str:
    """A state key: compact JSON array, unambiguous whatever the brand, post or author contains."""
    return json.dumps(parts, separators=(",", ":"), ensure_ascii=False)


def parse_key(raw: str) -> list[Any]:
    """Inverse of ``key``."""
    parts: list[Any] = json.loads(raw)
    return parts


def clock_key(partition: int) -> str:
    """Key of the stream time of a by-brand partition."""
    return key("clock", partition)


@dataclass
class Applied:
    """What one ``apply`` did: window keys changed, windows missed because closed, duplicate or replay."""

    touched: list[str] = field(default_factory=list)
    late: dict[str, int] = field(default_factory=dict)
    duplicate: bool = False
    replayed: bool = False
    stream_time: int | None = None
    expiring: list[tuple[int, str]] = field(default_factory=list)


class Aggregator:
    """Applies mentions to a ``Store``; stateless itself, so one instance serves every partition."""

    def __init__(self, settings: AggregateSettings) -> None:
        self.settings = settings
        self.grace_ms = settings.grace_s * 1000

    def stream_time(self, store: Store, partition: int) -> int | None:
        """The largest event time applied on ``partition`` (``None`` before the first)."""
        clock = store.get(clock_key(partition))
        return None if clock is None else clock["t"]

    def apply(self, store: Store, mention: BrandMention, partition: int, offset: int) -> Applied:
        """Apply the record at ``offset`` of by-brand ``partition``; idempotent per offset (module doc)."""
        done = Applied()
        clock = store.get(clock_key(partition))
        if clock is not None and clock["o"] >= offset:  # 2. and 4.: this record is wholly in the table
            done.replayed, done.stream_time = True, clock["t"]
            return done
        now: int | None = None if clock is None else clock["t"]
        windows = windows_of(mention.time_ms, self.settings.windows)
        open_windows = [w for w in windows if is_open(w, now, self.grace_ms)]
        for w in windows:
            if w not in open_windows:
                done.late[w.name] = done.late.get(w.name, 0) + 1
        if open_windows:
            self._count(store, mention, partition, offset, windows, open_windows, done)
        # 4. the clock last: once durable, every write above is too.
        sources = dict(clock["src"]) if clock is not None else {}
        source = str(mention.source)
        sources[source] = max(sources.get(source, mention.time_ms), mention.time_ms)
        stream_time = now
        if len(sources) >= mention.sources:
            watermark = min(sources.values())
            stream_time = watermark if now is None else max(now, watermark)
        store[clock_key(partition)] = {"q": partition, "o": offset, "t": stream_time, "src": sources}
        done.stream_time = stream_time
        return done

    def _count(
        self,
        store: Store,
        mention: BrandMention,
        partition: int,
        offset: int,
        windows: list[Window],
        open_windows: list[Window],
        done: Applied,
    ) -> None:
        # 3. a post counts once per brand: no marker, or a marker from this very offset.
        post_key = key("p", mention.brand, mention.post_id)
        marker = store.get(post_key)
        if marker is not None and marker["o"] != offset:
            done.duplicate = True
            return
        if marker is None:
            expiry = max(closes_at(w, self.grace_ms) for w in windows)
            store[post_key] = {"q": partition, "o": offset, "x": expiry}
            done.expiring.append((expiry, post_key))
        for window in open_windows:
            window_key = key("w", window.name, window.start, mention.brand)
            current = store.get(window_key)
            if current is not None and current["o"] >= offset:  # 2.
                continue
            new_author = False
            if mention.author is not None:
                author_key = key("a", window.name, window.start, mention.brand, mention.author)
                seen = store.get(author_key)
                new_author = seen is None or seen["o"] == offset
                if seen is None:
                    store[author_key] = {"q": partition, "o": offset, "x": closes_at(window, self.grace_ms)}
                    done.expiring.append((closes_at(window, self.grace_ms), author_key))
            if current is None:
                current = empty_window(window, mention.brand, partition)
                done.expiring.append((closes_at(window, self.grace_ms), window_key))
            store[window_key] = self._updated(current, mention, offset, new_author)
            done.touched.append(window_key)

    def _updated(self, value: dict[str, Any], mention: BrandMention, offset: int, new_author: bool) -> Any:
        value = dict(value)
        value["o"] = offset
        value["mentions"] += mention.mentions
        value["posts"] += 1
        value["authors"] += int(new_author)
        if mention.sentiment is not None:
            value["sentiment_sum"] += mention.sentiment
            value["sentiment_count"] += 1
        value["co_brands"] = self._tally(value["co_brands"], mention.co_brands)
        value["co_entities"] = self._tally(value["co_entities"], mention.co_entities)
        if len(value["samples"]) < self.settings.samples:
            value["samples"] = [*value["samples"], mention.post_id]
        return value

    def _tally(self, counts: dict[str, int], seen: tuple[str, ...]) -> dict[str, int]:
        # Exact counts for the first ``max_co_mentions`` distinct ids of a window; later new ids are ignored.
        counts = dict(counts)
        for item in seen:
            if item in counts:
                counts[item] += 1
            elif len(counts) < self.settings.max_co_mentions:
                counts[item] = 1
        return counts

    def expiry(self, raw_key: str, value: Any) -> int | None:
        """Stream time from which a key may be deleted (windows: close; markers: ``x``); ``None``: never."""
        kind = parse_key(raw_key)[0]
        if kind == "w":
            return int(value["end"]) + self.grace_ms
        if kind in ("p", "a"):
            return int(value["x"])
        return None

    def snapshot(self, raw_key: str, value: Any, stream_time: int | None) -> BrandAggregate:
        """The output record of a window key, ``final`` when the window is closed at ``stream_time``."""
        top = self.settings.top_n
        window = Window(value["window"], value["start"], value["end"])
        return BrandAggregate(
            brand=value["brand"],
            unknown=value["brand"].startswith(UNKNOWN_PREFIX),
            window=window.name,
            window_start=from_ms(window.start),
            window_end=from_ms(window.end),
            mentions=value["mentions"],
            posts=value["posts"],
            authors=value["authors"],
            co_brands=_top(value["co_brands"], top),
            co_entities=_top(value["co_entities"], top),
            sample_post_ids=list(value["samples"]),
            sentiment_sum=round(value["sentiment_sum"], 6),
            sentiment_count=value["sentiment_count"],
            final=not is_open(window, stream_time, self.grace_ms),
        )


def empty_window(window: Window, brand: str, partition: int) -> dict[str, Any]:
    """The value of a window key before its first post."""
    return {
        "q": partition,
        "o": -1,
        "brand": brand,
        "window": window.name,
        "start": window.start,
        "end": window.end,
        "mentions": 0,
        "posts": 0,
        "authors": 0,
        "sentiment_sum": 0.0,
        "sentiment_count": 0,
        "co_brands": {},
        "co_entities": {},
        "samples": [],
    }


def is_window_key(raw_key: str) -> bool:
    """Whether a state key holds a window aggregate."""
    return raw_key.startswith('["w"')


def _top(counts: dict[str, int], n: int) -> list[Count]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]
    return [Count(id=i, count=c) for i, c in ranked]
