"""The aggregation stage between faust and the pure core: state table, expiry, outboxes.

``Stage`` is what the faust agents call. It owns no I/O of its own: the state table is handed in (a faust
table, or a dict in tests) and the sinks are behind ``Outbox`` objects. Per by-brand record it

1. applies the mention to the table (``Aggregator.apply``, exactly once; see ``state``),
2. marks the changed windows in every outbox (``emit="update"``),
3. deletes keys the advanced stream time expired: markers at once, a closed window only once every outbox
   wrote its final state; until then it is marked for a final write and kept.

After a (re)assignment, ``on_recovered`` rebuilds the in-memory expiry index from the recovered table and
marks every window for writing, so states whose write was lost in a crash reach the sinks again.
"""

from __future__ import annotations

import heapq
import logging
from collections import defaultdict
from typing import Any

from stream_ner.aggregate.metrics import AggregateMetrics
from stream_ner.aggregate.model import BrandAggregate, BrandMention, mentions_of
from stream_ner.aggregate.outbox import Outbox
from stream_ner.aggregate.state import Aggregator, Store, clock_key, is_window_key
from stream_ner.messages import EntityEvent
from stream_ner.settings import AggregateSettings

log = logging.getLogger(__name__)


class Stage:
    """Per-process glue of the aggregation stage; one instance per faust app."""

    def __init__(
        self, settings: AggregateSettings, outboxes: list[Outbox], metrics: AggregateMetrics
    ) -> None:
        self.settings = settings
        self.aggregator = Aggregator(settings)
        self.outboxes = outboxes
        self.metrics = metrics
        self._expiry: dict[int, list[tuple[int, str]]] = defaultdict(list)
        self._closing: dict[int, set[str]] = defaultdict(set)

    def rekey(
        self, value: bytes | None, timestamp_ms: int | None, source: int, sources: int
    ) -> list[BrandMention]:
        """Stage one: an ``entities`` record to its brand mentions (none when unreadable or brandless)."""
        self.metrics.events.inc()
        try:
            event = EntityEvent.model_validate_json(value or b"")
        except ValueError as exc:
            self.metrics.invalid.inc()
            log.warning("skipping unreadable entity event: %s", str(exc).splitlines()[0])
            return []
        return mentions_of(event, timestamp_ms, source, sources)

    def on_mention(self, store: Store, value: bytes, partition: int, offset: int) -> None:
        """Stage two: apply one by-brand record, then expire what its stream time closed."""
        mention = BrandMention.from_json(value)
        # 1. exactly-once application
        done = self.aggregator.apply(store, mention, partition, offset)
        result = "replayed" if done.replayed else "duplicate" if done.duplicate else "counted"
        if not done.replayed and not done.duplicate and not done.touched:
            result = "late"
        self.metrics.mentions.labels(result).inc()
        for window, n in done.late.items():
            self.metrics.late.labels(window).inc(n)
        if done.stream_time is not None:
            self.metrics.stream_time.labels(str(partition)).set(done.stream_time / 1000)
        # 2. changed windows to the sinks
        if self.settings.emit == "update" and done.touched:
            for outbox in self.outboxes:
                outbox.mark(done.touched)
        for expiry, key in done.expiring:
            heapq.heappush(self._expiry[partition], (expiry, key))
        # 3. expiry, after the clock write of this record
        if done.stream_time is not None:
            self._expire(store, partition, done.stream_time)

    def _expire(self, store: Store, partition: int, stream_time: int) -> None:
        heap = self._expiry[partition]
        closing = self._closing[partition]
        while heap and heap[0][0] <= stream_time:
            _, key = heapq.heappop(heap)
            if key not in store:
                continue
            if is_window_key(key):
                closing.add(key)
                for outbox in self.outboxes:
                    outbox.mark([key])
            else:
                del store[key]
        for key in [k for k in closing if self._written_everywhere(k)]:
            closing.discard(key)
            if key in store:
                del store[key]
            for outbox in self.outboxes:
                outbox.forget(key)

    def _written_everywhere(self, key: str) -> bool:
        return all(not o.busy(key) and key in o.final_written for o in self.outboxes)

    def on_recovered(self, store: Store) -> None:
        """Rebuild the expiry index from the table and mark every window for writing."""
        self._expiry.clear()
        self._closing.clear()
        windows = []
        for key, value in list(store.items()):
            expiry = self.aggregator.expiry(key, value)
            if expiry is not None:
                self._expiry[int(value["q"])].append((expiry, key))
            if is_window_key(key):
                windows.append(key)
        for heap in self._expiry.values():
            heapq.heapify(heap)
        for outbox in self.outboxes:
            outbox.clear()
            outbox.mark(windows)
        log.info("state recovered: %d keys, %d windows", len(store), len(windows))

    def snapshot(self, store: Store, key: str) -> BrandAggregate | None:
        """Current output record of a window key (``None`` if it is gone)."""
        value: Any = store.get(key)
        if value is None:
            return None
        clock = store.get(clock_key(int(value["q"])))
        return self.aggregator.snapshot(key, value, None if clock is None else clock["t"])
