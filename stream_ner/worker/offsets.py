"""Which input offsets are safe to store: pure bookkeeping, no Kafka calls.

Each consumed record is ``track``-ed when it is read and ``complete``-d when every output it caused has
been acknowledged by the broker. ``committable`` gives, per partition, the offset to store: one past the
highest offset below which every tracked record is complete. Records complete out of order (the DLQ and
``entities`` are produced in parallel), so a gap holds the partition back until it fills.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

TopicPartition = tuple[str, int]


@dataclass
class _Partition:
    pending: set[int] = field(default_factory=set)
    done: list[int] = field(default_factory=list)  # min-heap of completed offsets not yet stored
    next_offset: int | None = None  # one past the last contiguous completion (first tracked offset at start)


class OffsetTracker:
    """In-flight records per partition, and the store-able watermark of each."""

    def __init__(self) -> None:
        self._partitions: dict[TopicPartition, _Partition] = {}

    def track(self, tp: TopicPartition, offset: int) -> None:
        """Record that ``offset`` was read and its outputs are not yet acknowledged."""
        part = self._partitions.setdefault(tp, _Partition())
        if part.next_offset is None:
            part.next_offset = offset
        part.pending.add(offset)

    def complete(self, tp: TopicPartition, offset: int) -> None:
        """Record that every output of ``offset`` is acknowledged.

        Unknown partitions are ignored: their assignment was revoked meanwhile.
        """
        part = self._partitions.get(tp)
        if part is None or offset not in part.pending:
            return
        part.pending.discard(offset)
        heapq.heappush(part.done, offset)

    def committable(self) -> dict[TopicPartition, int]:
        """Offsets to store now: per partition whose watermark moved since the last call."""
        result: dict[TopicPartition, int] = {}
        for tp, part in self._partitions.items():
            lowest_pending = min(part.pending) if part.pending else None
            advanced = part.next_offset
            while part.done and (lowest_pending is None or part.done[0] < lowest_pending):
                advanced = heapq.heappop(part.done) + 1
            if advanced != part.next_offset:
                part.next_offset = advanced
                result[tp] = advanced  # type: ignore[assignment]
        return result

    def forget(self, tps: list[TopicPartition]) -> None:
        """Drop partitions whose assignment was revoked; their in-flight records will be re-read elsewhere."""
        for tp in tps:
            self._partitions.pop(tp, None)

    def in_flight(self) -> int:
        """Records read whose outputs are not yet acknowledged, over all partitions."""
        return sum(len(part.pending) for part in self._partitions.values())

    def in_flight_of(self, tps: list[TopicPartition]) -> int:
        """Records in flight for the given partitions."""
        return sum(len(self._partitions[tp].pending) for tp in tps if tp in self._partitions)
