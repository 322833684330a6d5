"""Stage two of the aggregator: brand mentions into windows built from panes, exactly once.

One ``PaneState`` holds one partition of the by-brand topic. A window family of size S and step P is cut
into tumbling *panes* of P (Li et al. 2005, "No pane, no gain"): a mention updates one pane per family, and
a window is the sum of its S / P panes. Durable state, changelogged to one changelog partition per by-brand
partition, restored after a crash; every value names its ``partition`` and the by-brand ``offset`` of the
last record applied to it::

    ["pane", family, start, brand]            Pane: mentions, posts, mentions per polarity and their
                                              score sum, co-mention counts, the first sample post ids
    ["authors", family, start, brand, offset] authors first seen in the pane by the records up to offset
    ["final", family, start, brand]           the frozen record of a closed window not yet written
                                              everywhere (``record``)
    ["high", brand, source]                   highest ``entities`` offset applied for the brand from
                                              entities partition ``source``
    ["clock", partition]                      Clock: stream time and the last by-brand offset applied (the
                                              partition in the key: faust restores every partition of a
                                              table into one mapping)

Derived in memory (rebuilt from the above after a restore): per open window, the distinct authors across
its panes and the co-mention counters with an incremental top-N (``topn``).

Exactness. Records of a partition are applied in offset order, a batch at a time. The writes of a batch go
out in the order deltas of authors, finals, panes, high-water marks, clock, all to the same changelog
partition, which Kafka keeps in order; after a crash the state is restored to a *prefix* of the writes and
the input replayed from the last committed offset (faust flushes the producer before committing).

1. A record at or below ``Clock.offset`` is wholly applied: skipped. The by-brand topic is written without
   transactions and read in order, so its offsets are contiguous: a record applied after a gap (not at
   ``Clock.offset + 1``) means records were missed or delivered out of order, which rule 1 cannot repair;
   it is reported (``Applied.gaps``), never expected.
2. A pane whose ``offset`` is at least the record's already holds it: its counts are not touched again
   (unless the offset is the record's own, set by its earlier mentions in this very call). Panes are
   written after the authors and finals of their batch, so a durable pane implies those are.
3. A mention whose ``entities`` position is at or below its ``["high", brand, source]`` mark was applied
   before: stage one re-sent it after a crash of its own (``dedupe``, rule 2). Stage one sends the
   mentions of a source partition in offset order and the producer keeps that order per partition (one
   request in flight), so the mark is exact. The marks are written after the panes: a durable mark implies
   the panes it protects are durable, and until it is, replays recompute it exactly as the first time.
4. Authors are a set per pane (a union, so rewriting one is harmless); a window's distinct authors is the
   size of the union of its panes' sets.
5. A window closes when the stream time reaches its end plus grace. Its record is frozen at that moment
   (``["final", ...]``, written before the panes of the batch), because a later mention may still update a
   pane the window shares with a younger, still open window. Keys are deleted only after every sink wrote
   the final record, and after the clock write that closed the window.

Stream time (event-time watermark). The by-brand partition receives mentions from every ``entities``
partition mixed together, and those are consumed at different speeds; taking the largest event time seen
would make a fast partition close windows the slow ones still feed. So the clock keeps the largest event
time per source partition and the stream time is the smallest of them, once every source partition has
been seen (``None`` before: nothing is late yet), and never moves backwards. An ``entities`` partition
without traffic therefore holds windows open: counts are still written on every update, only finality and
clean-up wait.

Late mentions: a mention counts in each window of its family that is still open (stream time before
``end + grace``); if none is open it is dropped and reported in ``Applied.late_windows``.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stream_ner.aggregate.mentions import BrandMention
from stream_ner.aggregate.topn import TopN
from stream_ner.brands.normalize import UNKNOWN_PREFIX
from stream_ner.messages import iso_utc
from stream_ner.settings import AggregateSettings, WindowSpec

Write = tuple[str, Any]
"""A changelog write: key and JSON value, or ``None`` to delete the key."""

WindowId = tuple[str, int, str]
"""``(family, start_ms, brand)`` of a window; panes are named the same way."""


def state_key(*parts: Any) -> str:
    """A changelog key: compact JSON array, unambiguous whatever the brand or author contains."""
    return json.dumps(parts, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Family:
    """A window family in milliseconds; its panes are ``step_ms`` long."""

    name: str
    size_ms: int
    step_ms: int

    @classmethod
    def of(cls, spec: WindowSpec) -> Family:
        """From the settings."""
        return cls(spec.name, spec.size_s * 1000, spec.step_s * 1000)

    def window_starts(self, time_ms: int) -> range:
        """Starts of every window containing ``time_ms``, oldest first."""
        last = time_ms - time_ms % self.step_ms
        return range(last - self.size_ms + self.step_ms, last + 1, self.step_ms)

    def pane_starts(self, window_start: int) -> range:
        """Starts of the panes of the window starting at ``window_start``."""
        return range(window_start, window_start + self.size_ms, self.step_ms)


@dataclass(slots=True)
class Pane:
    """One brand in one pane: everything but the authors, which live in sets of their own."""

    offset: int = -1
    mentions: int = 0
    posts: int = 0
    sentiment_sum: float = 0.0
    sentiment_count: int = 0
    negative: int = 0
    neutral: int = 0
    positive: int = 0
    co_brands: dict[str, int] = field(default_factory=dict)
    co_entities: dict[str, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)

    def to_json(self, partition: int) -> dict[str, Any]:
        """The changelog value."""
        return {
            "partition": partition,
            "offset": self.offset,
            "mentions": self.mentions,
            "posts": self.posts,
            "sentiment_sum": self.sentiment_sum,
            "sentiment_count": self.sentiment_count,
            "negative": self.negative,
            "neutral": self.neutral,
            "positive": self.positive,
            "co_brands": dict(self.co_brands),  # copies: the pane changes on, the write must not
            "co_entities": dict(self.co_entities),
            "samples": list(self.samples),
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Pane:
        """Inverse of ``to_json`` (a pane written before the polarity counts has zero of each)."""
        fields = {k: v for k, v in value.items() if k != "partition"}
        return cls(**fields | {k: type(value[k])(value[k]) for k in ("co_brands", "co_entities", "samples")})


@dataclass(slots=True)
class Clock:
    """Last by-brand offset applied, stream time, and the largest event time per ``entities`` partition."""

    offset: int = -1
    time_ms: int | None = None
    sources: dict[int, int] = field(default_factory=dict)

    def advance(self, source: int, time_ms: int, sources: int) -> bool:
        """Take one mention's event time; whether the stream time moved."""
        self.sources[source] = max(self.sources.get(source, time_ms), time_ms)
        if len(self.sources) < sources:
            return False
        watermark = min(self.sources.values())
        if self.time_ms is not None and watermark <= self.time_ms:
            return False
        self.time_ms = watermark
        return True

    def to_json(self, partition: int) -> dict[str, Any]:
        """The changelog value (source partitions as string keys, as JSON has them)."""
        sources = {str(k): v for k, v in self.sources.items()}
        return {"partition": partition, "offset": self.offset, "time_ms": self.time_ms, "sources": sources}


@dataclass(slots=True)
class WindowView:
    """What of an open window cannot be summed from its panes on demand: authors and co-mention ranks."""

    authors: int
    co_brands: TopN
    co_entities: TopN


@dataclass
class Applied:
    """What one ``apply`` did."""

    writes: list[Write] = field(default_factory=list)
    changed: set[WindowId] = field(default_factory=set)
    counted: int = 0
    replayed: int = 0
    late: int = 0
    late_windows: Counter[str] = field(default_factory=Counter)
    gaps: list[tuple[int, int]] = field(default_factory=list)
    """``(expected, got)`` offsets where a record did not follow the last one applied (rule 1)."""


class PaneState:
    """The aggregation state of one by-brand partition (module doc)."""

    def __init__(self, partition: int, settings: AggregateSettings) -> None:
        self.partition = partition
        self.settings = settings
        self.families = {spec.name: Family.of(spec) for spec in settings.windows}
        self.grace_ms = settings.grace_s * 1000
        self.clock = Clock()
        self.panes: dict[WindowId, Pane] = {}
        self.authors: dict[WindowId, set[str]] = {}
        self.author_deltas: dict[WindowId, dict[str, list[str]]] = {}
        self.high: dict[tuple[str, int], int] = {}
        self.views: dict[WindowId, WindowView] = {}
        self.finals: dict[WindowId, dict[str, Any]] = {}
        self._closing: list[tuple[int, WindowId]] = []
        self._panes_of_brand: Counter[str] = Counter()

    # -- applying records -------------------------------------------------------------------------------

    def apply(self, records: Iterable[tuple[int, list[BrandMention], int]]) -> Applied:
        """Apply by-brand records ``(offset, mentions, entities partitions)`` in offset order."""
        done = Applied()
        new_authors: dict[WindowId, list[str]] = {}
        dirty_panes: set[WindowId] = set()
        dirty_high: set[tuple[str, int]] = set()
        frozen: list[WindowId] = []
        applied_any = False
        for offset, mentions, sources in records:
            if offset <= self.clock.offset:  # 1.
                done.replayed += len(mentions)
                continue
            if self.clock.offset >= 0 and offset != self.clock.offset + 1:
                done.gaps.append((self.clock.offset + 1, offset))
            applied_any = True
            for mention in mentions:
                mark = (mention.brand, mention.source)
                if mention.source_offset <= self.high.get(mark, -1):  # 3.
                    done.replayed += 1
                else:
                    self.high[mark] = mention.source_offset
                    dirty_high.add(mark)
                    self._count(mention, offset, done, new_authors, dirty_panes)
                if self.clock.advance(mention.source, mention.time_ms, sources):
                    frozen.extend(self._close_windows(done))
            self.clock.offset = offset
        if not applied_any:
            return done
        # the writes of the batch, in the order the module doc relies on
        for pane_id, authors in new_authors.items():
            delta_key = state_key("authors", *pane_id, self.clock.offset)
            deltas = self.author_deltas.setdefault(pane_id, {})
            merged = deltas.get(delta_key, []) + authors
            deltas[delta_key] = merged
            done.writes.append((delta_key, {"partition": self.partition, "authors": merged}))
        for window_id in frozen:  # 5.
            value = {"partition": self.partition, "record": self.finals[window_id]}
            done.writes.append((state_key("final", *window_id), value))
        for pane_id in dirty_panes:  # 2.
            done.writes.append((state_key("pane", *pane_id), self.panes[pane_id].to_json(self.partition)))
        for brand, source in dirty_high:  # 3.
            value = {"partition": self.partition, "offset": self.high[(brand, source)]}
            done.writes.append((state_key("high", brand, source), value))
        done.writes.append((state_key("clock", self.partition), self.clock.to_json(self.partition)))  # 1.
        return done

    def _count(
        self,
        mention: BrandMention,
        offset: int,
        done: Applied,
        new_authors: dict[WindowId, list[str]],
        dirty_panes: set[WindowId],
    ) -> None:
        now = self.clock.time_ms
        counted = False
        for family in self.families.values():
            starts = family.window_starts(mention.time_ms)
            open_starts = [s for s in starts if now is None or now < s + family.size_ms + self.grace_ms]
            if len(open_starts) < len(starts):
                done.late_windows[family.name] += len(starts) - len(open_starts)
            if not open_starts:
                continue
            counted = True
            pane_start = mention.time_ms - mention.time_ms % family.step_ms
            pane_id = (family.name, pane_start, mention.brand)
            pane = self.panes.get(pane_id)
            if pane is None:
                pane = self.panes[pane_id] = Pane()
                self.authors.setdefault(pane_id, set())  # its authors may be durable before the pane
                self._panes_of_brand[mention.brand] += 1
            ids = [(family.name, s, mention.brand) for s in open_starts]
            views = [(w, self._view(w, family)) for w in ids if w not in self.finals]  # before any change
            author = mention.author
            if author is not None and author not in self.authors[pane_id]:  # 4.
                self.authors[pane_id].add(author)
                new_authors.setdefault(pane_id, []).append(author)
                # panes sharing a window with this one where the author already is
                near = range(
                    pane_start - family.size_ms + family.step_ms, pane_start + family.size_ms, family.step_ms
                )
                seen = [
                    p
                    for p in near
                    if p != pane_start and author in self.authors.get((family.name, p, mention.brand), ())
                ]
                for window_id, view in views:
                    start = window_id[1]
                    if not any(start <= p < start + family.size_ms for p in seen):
                        view.authors += 1
                    done.changed.add(window_id)
            if pane.offset >= offset and pane_id not in dirty_panes:  # 2. (not: changed by this very call)
                continue
            co_brands, co_entities = self._add(pane, mention, offset)
            dirty_panes.add(pane_id)
            for window_id, view in views:  # a window counts what its panes count, cap included
                view.co_brands.add(co_brands)
                view.co_entities.add(co_entities)
                done.changed.add(window_id)
        if counted:
            done.counted += 1
        else:
            done.late += 1

    def _add(self, pane: Pane, mention: BrandMention, offset: int) -> tuple[list[str], list[str]]:
        """Count the mention in the pane; the co-mentions it counted (within the pane's cap)."""
        pane.offset = offset
        pane.mentions += mention.mentions
        pane.posts += 1
        negative, neutral, positive = mention.tone
        if negative or neutral or positive:
            pane.negative += negative
            pane.neutral += neutral
            pane.positive += positive
            pane.sentiment_count += negative + neutral + positive
            pane.sentiment_sum += mention.sentiment
        if len(pane.samples) < self.settings.samples:
            pane.samples.append(mention.post_id)
        limit = self.settings.max_co_mentions
        return _tally(pane.co_brands, mention.co_brands, limit), _tally(
            pane.co_entities, mention.co_entities, limit
        )

    def _view(self, window_id: WindowId, family: Family) -> WindowView:
        view = self.views.get(window_id)
        if view is None:
            view = self.views[window_id] = self._build_view(window_id, family)
            heapq.heappush(self._closing, (window_id[1] + family.size_ms + self.grace_ms, window_id))
        return view

    def _build_view(self, window_id: WindowId, family: Family) -> WindowView:
        name, start, brand = window_id
        panes = [(name, p, brand) for p in family.pane_starts(start)]
        authors: set[str] = set()
        co_brands: Counter[str] = Counter()
        co_entities: Counter[str] = Counter()
        for pane_id in panes:
            authors |= self.authors.get(pane_id, set())
            pane = self.panes.get(pane_id)
            if pane is not None:
                co_brands.update(pane.co_brands)
                co_entities.update(pane.co_entities)
        top = self.settings.top_n
        return WindowView(len(authors), TopN(top, dict(co_brands)), TopN(top, dict(co_entities)))

    def _close_windows(self, done: Applied) -> list[WindowId]:
        frozen = []
        now = self.clock.time_ms
        while self._closing and now is not None and self._closing[0][0] <= now:
            _, window_id = heapq.heappop(self._closing)
            if window_id not in self.views or window_id in self.finals:
                continue
            self.finals[window_id] = self._record(window_id, final=True)
            del self.views[window_id]
            frozen.append(window_id)
            done.changed.add(window_id)
        return frozen

    # -- reading ----------------------------------------------------------------------------------------

    def record(self, window_id: WindowId) -> dict[str, Any] | None:
        """The ``BrandAggregate`` of a window as a plain dict (``None``: no longer held)."""
        final = self.finals.get(window_id)
        if final is not None:
            return final
        if window_id not in self.views:
            return None
        return self._record(window_id, final=False)

    def _record(self, window_id: WindowId, final: bool) -> dict[str, Any]:
        name, start, brand = window_id
        family = self.families[name]
        view = self.views[window_id]
        mentions = posts = sentiment_count = negative = neutral = positive = 0
        sentiment_sum = 0.0
        samples: list[str] = []
        for p in family.pane_starts(start):
            pane = self.panes.get((name, p, brand))
            if pane is None:
                continue
            mentions += pane.mentions
            posts += pane.posts
            sentiment_sum += pane.sentiment_sum
            sentiment_count += pane.sentiment_count
            negative += pane.negative
            neutral += pane.neutral
            positive += pane.positive
            samples.extend(pane.samples)
        polar = positive + negative
        return {
            "brand": brand,
            "unknown": brand.startswith(UNKNOWN_PREFIX),
            "window": name,
            "window_start": iso_ms(start),
            "window_end": iso_ms(start + family.size_ms),
            "mentions": mentions,
            "posts": posts,
            "authors": view.authors,
            "co_brands": [{"id": i, "count": c} for i, c in view.co_brands.top()],
            "co_entities": [{"id": i, "count": c} for i, c in view.co_entities.top()],
            "sample_post_ids": samples[: self.settings.samples],
            "sentiment_sum": round(sentiment_sum, 6),
            "sentiment_count": sentiment_count,
            "sentiment_mean": round(sentiment_sum / sentiment_count, 4) if sentiment_count else None,
            "negative": negative,
            "neutral": neutral,
            "positive": positive,
            "net_sentiment": round((positive - negative) / polar, 4) if polar else None,
            "final": final,
        }

    def windows(self) -> list[WindowId]:
        """Every window held: open ones and closed ones not yet released."""
        return [*self.views, *self.finals]

    # -- clean-up ---------------------------------------------------------------------------------------

    def release(self, window_id: WindowId) -> list[Write]:
        """Every sink wrote the final record of ``window_id``: delete it and the panes nothing else needs."""
        if self.finals.pop(window_id, None) is None:
            return []
        writes: list[Write] = [(state_key("final", *window_id), None)]
        name, start, brand = window_id
        family = self.families[name]
        for p in family.pane_starts(start):
            pane_id = (name, p, brand)
            if pane_id in self.panes and not self._pane_needed(family, pane_id):
                writes.extend(self._drop_pane(pane_id))
        return writes

    def _pane_needed(self, family: Family, pane_id: WindowId) -> bool:
        name, p, brand = pane_id
        now = self.clock.time_ms
        for start in range(p - family.size_ms + family.step_ms, p + 1, family.step_ms):
            window_id = (name, start, brand)
            if window_id in self.finals or window_id in self.views:
                return True
            if now is None or now < start + family.size_ms + self.grace_ms:
                return True  # still open: a late mention may create it
        return False

    def _drop_pane(self, pane_id: WindowId) -> list[Write]:
        del self.panes[pane_id]
        self.authors.pop(pane_id, None)
        writes: list[Write] = [(state_key("pane", *pane_id), None)]
        writes.extend((key, None) for key in self.author_deltas.pop(pane_id, {}))
        brand = pane_id[2]
        self._panes_of_brand[brand] -= 1
        if self._panes_of_brand[brand] <= 0:
            del self._panes_of_brand[brand]
            for mark in [m for m in self.high if m[0] == brand]:
                del self.high[mark]
                writes.append((state_key("high", *mark), None))
        return writes

    # -- restore ----------------------------------------------------------------------------------------

    @classmethod
    def restore(
        cls, partition: int, settings: AggregateSettings, items: Iterable[tuple[str, Any]]
    ) -> PaneState:
        """Rebuild from the changelogged values of this partition (any order), views included."""
        state = cls(partition, settings)
        for raw_key, value in items:
            kind, *rest = json.loads(raw_key)
            if kind == "clock":  # also ["clock"], as written before the key named its partition
                sources = {int(k): int(v) for k, v in value["sources"].items()}
                clock = Clock(int(value["offset"]), value["time_ms"], sources)
                if clock.offset > state.clock.offset:
                    state.clock = clock
            elif kind == "pane":
                pane_id = (rest[0], int(rest[1]), rest[2])
                state.panes[pane_id] = Pane.from_json(value)
                state._panes_of_brand[pane_id[2]] += 1
            elif kind == "authors":
                pane_id = (rest[0], int(rest[1]), rest[2])
                state.authors.setdefault(pane_id, set()).update(value["authors"])
                state.author_deltas.setdefault(pane_id, {})[raw_key] = list(value["authors"])
            elif kind == "final":
                state.finals[(rest[0], int(rest[1]), rest[2])] = value["record"]
            elif kind == "high":
                state.high[(rest[0], int(rest[1]))] = int(value["offset"])
        for pane_id in state.panes:
            state.authors.setdefault(pane_id, set())
        now = state.clock.time_ms
        for name, p, brand in list(state.panes):
            family = state.families.get(name)
            if family is None:
                continue  # a family no longer configured: its panes age out with nothing to feed
            for start in range(p - family.size_ms + family.step_ms, p + 1, family.step_ms):
                window_id = (name, start, brand)
                closed = now is not None and now >= start + family.size_ms + state.grace_ms
                if not closed and window_id not in state.finals:
                    state._view(window_id, family)
        return state


def _tally(counts: dict[str, int], seen: tuple[str, ...], limit: int) -> list[str]:
    """Exact counts for the first ``limit`` distinct ids of a pane, later new ids ignored; those counted."""
    counted = []
    for item in seen:
        if item in counts:
            counts[item] += 1
        elif len(counts) < limit:
            counts[item] = 1
        else:
            continue
        counted.append(item)
    return counted


def iso_ms(ms: int) -> str:
    """``2024-05-01T12:00:00Z`` of epoch milliseconds (whole seconds: windows are aligned on them)."""
    return iso_utc(datetime.fromtimestamp(ms // 1000, UTC))
