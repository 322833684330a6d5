"""The two stages of the aggregator between the stream driver and the pure cores, one batch at a time.

``Stages`` owns no I/O: the driver (``faust_app``) hands it batches of records and writes what it returns
(changelog writes per partition, by-brand records); the sinks sit behind ``Outbox`` objects.

Stage one, ``rekey``: a batch of ``entities`` records -> first event per post (``dedupe``) -> brand mentions
grouped into one record per by-brand partition, in input order. Stage two, ``apply``: a batch of by-brand
records -> panes and windows (``panes``) -> changed windows marked in every outbox. ``release`` deletes a
closed window once every outbox wrote its final record. ``restore_*`` rebuild a partition's state after a
(re)assignment and mark every window it holds for writing, so states whose write was lost in a crash reach
the sinks again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from stream_ner.aggregate.dedupe import FirstEvents, Verdict
from stream_ner.aggregate.mentions import (
    BrandMention,
    brand_partition,
    decode_batch,
    encode_batch,
    mentions_of,
    read_event,
)
from stream_ner.aggregate.metrics import AggregateMetrics
from stream_ner.aggregate.outbox import Outbox
from stream_ner.aggregate.panes import PaneState, WindowId, Write
from stream_ner.settings import AggregateSettings

log = logging.getLogger(__name__)

GAP = "records missed or out of order, counts may be off"
"""How the log states an input read after a gap in its offsets (``dedupe`` and ``panes``)."""

OutboxKey = tuple[int, WindowId]
"""What outboxes hold: by-brand partition and window."""


@dataclass
class Rekeyed:
    """What ``rekey`` asks the driver to write: post markers per ``entities`` partition, by-brand records."""

    changelog: dict[int, list[Write]] = field(default_factory=dict)
    records: list[tuple[int, bytes]] = field(default_factory=list)  # by-brand partition, value


class Stages:
    """Per-process glue of the aggregator; one instance per app, serving every assigned partition."""

    def __init__(
        self, settings: AggregateSettings, sources: int, outboxes: list[Outbox], metrics: AggregateMetrics
    ) -> None:
        self.settings = settings
        self.sources = sources
        self.outboxes = outboxes
        self.metrics = metrics
        self.horizon_ms = (settings.grace_s + settings.replay_horizon_s) * 1000
        self.first_events: dict[int, FirstEvents] = {}
        self.panes: dict[int, PaneState] = {}

    # -- stage one ----------------------------------------------------------------------------------

    def rekey(self, records: Iterable[tuple[int, int, int | None, bytes | None]]) -> Rekeyed:
        """``(partition, offset, timestamp ms, value)`` of ``entities`` records -> by-brand records."""
        out = Rekeyed()
        by_partition: dict[int, list[BrandMention]] = defaultdict(list)
        touched: set[int] = set()
        events = invalid = duplicates = 0
        duplicate_mentions = 0
        skipped: dict[int, list[int]] = defaultdict(list)
        for partition, offset, timestamp_ms, value in records:
            state = self.first_events.get(partition)
            if state is None:  # not held (revoked while buffered, or not restored yet): not ours to count
                skipped[partition].append(offset)
                continue
            events += 1
            touched.add(partition)  # its last offset read is written, even if no event of it is readable
            expected = state.read(offset)
            if expected is not None:
                self._gap("entities", "read", partition, offset, expected)
            try:
                post = read_event(value, timestamp_ms)
            except ValueError as exc:
                invalid += 1
                log.warning("skipping unreadable entity event at %d/%d: %s", partition, offset, exc)
                continue
            mentions = mentions_of(post, partition, offset)
            if state.judge(post.post_id, offset, post.time_ms) is Verdict.DUPLICATE:
                duplicates += 1
                duplicate_mentions += len(mentions)
                continue
            for mention in mentions:
                by_partition[brand_partition(mention.brand, self.settings.partitions)].append(mention)
        for partition in touched:
            out.changelog[partition] = self.first_events[partition].writes()
        out.records = [(q, encode_batch(ms, self.sources)) for q, ms in sorted(by_partition.items())]
        self._skipped("rekey", skipped)
        self.metrics.events.inc(events)
        self.metrics.invalid.inc(invalid)
        self.metrics.duplicate_events.inc(duplicates)
        self.metrics.mentions.labels("duplicate").inc(duplicate_mentions)
        return out

    # -- stage two ----------------------------------------------------------------------------------

    def apply(self, records: Iterable[tuple[int, int, bytes]]) -> dict[int, list[Write]]:
        """``(partition, offset, value)`` of by-brand records -> changelog writes per by-brand partition."""
        per_partition: dict[int, list[tuple[int, list[BrandMention], int]]] = defaultdict(list)
        skipped: dict[int, list[int]] = defaultdict(list)
        for partition, offset, value in records:
            if partition in self.panes:
                mentions, sources = decode_batch(value)
                per_partition[partition].append((offset, mentions, sources))
            else:  # not held (revoked while buffered, or not restored yet): not ours to apply
                skipped[partition].append(offset)
        self._skipped("windows", skipped)
        writes = {}
        for partition, batch in per_partition.items():
            state = self.panes[partition]
            done = state.apply(batch)
            writes[partition] = done.writes
            m = self.metrics
            m.mentions.labels("counted").inc(done.counted)
            m.mentions.labels("replayed").inc(done.replayed)
            m.mentions.labels("late").inc(done.late)
            for window, n in done.late_windows.items():
                m.late.labels(window).inc(n)
            for expected, got in done.gaps:
                self._gap("by-brand", "applied", partition, got, expected)
            if state.clock.time_ms is not None:
                m.stream_time.labels(str(partition)).set(state.clock.time_ms / 1000)
            keys = [(partition, w) for w in done.changed]
            if self.settings.emit == "update":
                self._mark(keys)
            else:
                self._mark([k for k in keys if k[1] in state.finals])
        return writes

    def record(self, key: OutboxKey) -> dict[str, Any] | None:
        """The current record of a window (``None``: released, or its partition revoked)."""
        state = self.panes.get(key[0])
        return None if state is None else state.record(key[1])

    def release(self) -> dict[int, list[Write]]:
        """Delete closed windows every outbox has written; the changelog deletions per partition."""
        writes: dict[int, list[Write]] = defaultdict(list)
        done: set[OutboxKey] = set()
        if self.outboxes:
            done = set.intersection(*(set(o.final_written) for o in self.outboxes))  # type: ignore[arg-type]
        for key in done:
            if any(o.busy(key) for o in self.outboxes):
                continue
            partition, window = key
            state = self.panes.get(partition)
            if state is not None:
                writes[partition].extend(state.release(window))
            for outbox in self.outboxes:
                outbox.forget(key)
        return dict(writes)

    # -- (re)assignment -----------------------------------------------------------------------------

    def restore_sources(self, assigned: set[int], table: Iterable[tuple[str, Any]]) -> None:
        """Stage one's partitions now assigned: keep those held, rebuild new ones from the changelog."""
        for partition in set(self.first_events) - assigned:
            del self.first_events[partition]
        new = assigned - set(self.first_events)
        items = _by_partition(table, new)
        for partition in new:
            self.first_events[partition] = FirstEvents.restore(partition, self.horizon_ms, items[partition])
        self.metrics.assigned.labels("rekey").set(len(self.first_events))
        if new:
            markers = sum(len(self.first_events[p].markers) for p in new)
            log.info("entities partitions %s restored: %d post markers", sorted(new), markers)

    def restore_panes(self, assigned: set[int], table: Iterable[tuple[str, Any]]) -> None:
        """Stage two's partitions now assigned: as ``restore_sources``, then every held window is marked."""
        for partition in set(self.panes) - assigned:
            del self.panes[partition]
            for outbox in self.outboxes:
                outbox.drop(partial(_in_partition, partition))
        new = assigned - set(self.panes)
        items = _by_partition(table, new)
        for partition in new:
            state = PaneState.restore(partition, self.settings, items[partition])
            self.panes[partition] = state
            self._mark([(partition, w) for w in state.windows()])
        self.metrics.assigned.labels("windows").set(len(self.panes))
        if new:
            windows = sum(len(self.panes[p].windows()) for p in new)
            log.info("by-brand partitions %s restored: %d windows", sorted(new), windows)

    def _skipped(self, stage: str, skipped: dict[int, list[int]]) -> None:
        for partition, offsets in skipped.items():
            self.metrics.skipped.labels(stage).inc(len(offsets))
            log.warning(
                "%s: %d records of partition %d (offsets %d..%d) skipped: the partition is not held here",
                stage,
                len(offsets),
                partition,
                min(offsets),
                max(offsets),
            )

    def _gap(self, topic: str, done: str, partition: int, got: int, expected: int) -> None:
        """Count and log an input record read after a gap in its partition's offsets."""
        self.metrics.gaps.inc()
        log.error(
            "%s partition %d: offset %d %s where %d was next: %s", topic, partition, got, done, expected, GAP
        )

    def _mark(self, keys: list[OutboxKey]) -> None:
        if keys:
            for outbox in self.outboxes:
                outbox.mark(keys)


def _in_partition(partition: int, key: OutboxKey) -> bool:
    return key[0] == partition


def _by_partition(table: Iterable[tuple[str, Any]], partitions: set[int]) -> dict[int, list[tuple[str, Any]]]:
    items: dict[int, list[tuple[str, Any]]] = {p: [] for p in partitions}
    if partitions:
        for key, value in table:
            partition = value.get("partition") if isinstance(value, dict) else None
            if partition in items:
                items[partition].append((key, value))
    return items
