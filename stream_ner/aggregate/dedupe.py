"""Stage one of the aggregator: the first event of a post wins, before the post is split by brand.

``entities`` is keyed by post id, so every event of a post reaches the same partition and the same
``FirstEvents`` (one per ``entities`` partition). A worker crash replays posts, and a model upgrade
mid-stream may give a replayed post other brands or entities; counting the union of its events would count
it twice. The rule is therefore per post, not per brand: the event at the lowest offset is the post, and a
later event with the same post id is skipped, whatever it says.

State, changelogged (one changelog partition per ``entities`` partition) and restored after a crash::

    ["post", post_id]      Marker: offset of the post's first event, stream time from which it may be dropped
    ["clock", partition]   Clock: largest event time seen on the partition and the last offset read (the
                           partition is in the key: faust restores every partition of a table into one
                           mapping)

Exactness after a crash. The input is replayed from the last committed offset, and the changelog holds a
prefix of the writes made since (faust flushes the producer before it commits).

1. An event whose post has no marker is the first: its marker is written and its mentions go out, in
   either order (if only the mentions are durable, the replay finds no marker and sends them again, and
   the by-brand stage skips them by position). Every post gets a marker, brands or not: a later event of
   it may name some.
2. An event whose post has a marker *at its own offset* is the first event being replayed: its mentions go
   out again. They are the same mentions, from the same ``entities`` position, and the by-brand stage
   skips positions it has applied (``panes``, rule 3).
3. Any other event of a marked post is a repeat: skipped, counted in ``duplicate_events``.

Gaps. The workers write ``entities`` without transactions, so its offsets are contiguous and a replay
starts at or below the last offset read plus one: a record read after a gap (``FirstEvents.read``) means
records were skipped by the consumer or deleted unread, which no rule here can repair; it is reported,
never expected.

Bound. A marker lives for ``grace_s + replay_horizon_s`` of stream time after the later of the post's event
time and the stream time when it was first seen; an event of the same post arriving after that counts
again. Replays after a worker crash arrive within seconds to minutes of stream time, so the horizon (10
minutes by default) bounds memory (markers for that much traffic) without letting a replay through.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

Write = tuple[str, Any]
"""A changelog write: key and JSON value, or ``None`` to delete the key."""


def clock_key(partition: int) -> str:
    """Changelog key of a partition's clock."""
    return json.dumps(["clock", partition], separators=(",", ":"))


def post_key(post_id: str) -> str:
    """Changelog key of a post's marker."""
    return json.dumps(["post", post_id], separators=(",", ":"), ensure_ascii=False)


class Verdict(Enum):
    """What to do with one entity event."""

    FIRST = "first"
    REPLAYED_FIRST = "replayed_first"
    DUPLICATE = "duplicate"


@dataclass(slots=True)
class Marker:
    """A post counted from the event at ``offset``; dropped once the stream time reaches ``expires_ms``."""

    offset: int
    expires_ms: int


@dataclass
class FirstEvents:
    """The post markers of one ``entities`` partition (module doc)."""

    partition: int
    horizon_ms: int
    clock_ms: int | None = None
    offset: int = -1
    markers: dict[str, Marker] = field(default_factory=dict)
    _expiry: list[tuple[int, str]] = field(default_factory=list)
    _writes: list[Write] = field(default_factory=list)

    def read(self, offset: int) -> int | None:
        """Note that the record at ``offset`` was read, readable or not.

        Returns the offset expected instead if records were missed before this one (module doc, gaps).
        """
        expected = self.offset + 1
        self.offset = max(self.offset, offset)
        return expected if self.offset == offset and 0 < expected < offset else None

    def judge(self, post_id: str, offset: int, time_ms: int) -> Verdict:
        """The verdict on the event at ``offset``; records the marker and the clock write it needs."""
        self.clock_ms = time_ms if self.clock_ms is None else max(self.clock_ms, time_ms)
        marker = self.markers.get(post_id)
        if marker is not None:
            return Verdict.REPLAYED_FIRST if marker.offset == offset else Verdict.DUPLICATE
        marker = Marker(offset, self.clock_ms + self.horizon_ms)
        self.markers[post_id] = marker
        heapq.heappush(self._expiry, (marker.expires_ms, post_id))
        self._writes.append((post_key(post_id), self._value(marker)))  # 1.
        return Verdict.FIRST

    def writes(self) -> list[Write]:
        """The changelog writes since the last call, then the clock and the expired markers' deletions."""
        writes, self._writes = self._writes, []
        if self.offset >= 0 or self.clock_ms is not None:
            clock = {"partition": self.partition, "clock_ms": self.clock_ms, "offset": self.offset}
            writes.append((clock_key(self.partition), clock))
        if self.clock_ms is not None:
            while self._expiry and self._expiry[0][0] <= self.clock_ms:
                _, post_id = heapq.heappop(self._expiry)
                marker = self.markers.get(post_id)
                if marker is not None and marker.expires_ms <= self.clock_ms:
                    del self.markers[post_id]
                    writes.append((post_key(post_id), None))
        return writes

    def _value(self, marker: Marker) -> dict[str, int]:
        return {"partition": self.partition, "offset": marker.offset, "expires_ms": marker.expires_ms}

    @classmethod
    def restore(cls, partition: int, horizon_ms: int, items: Iterable[tuple[str, Any]]) -> FirstEvents:
        """Rebuild from the changelogged values of this partition (any order)."""
        state = cls(partition, horizon_ms)
        for raw_key, value in items:
            kind, *rest = json.loads(raw_key)
            if kind == "clock":  # also ["clock"], as written before the key named its partition
                state.offset = max(state.offset, int(value.get("offset", -1)))
                if value["clock_ms"] is not None:
                    clock_ms = int(value["clock_ms"])
                    state.clock_ms = clock_ms if state.clock_ms is None else max(state.clock_ms, clock_ms)
            elif kind == "post":
                marker = Marker(int(value["offset"]), int(value["expires_ms"]))
                state.markers[rest[0]] = marker
                state._expiry.append((marker.expires_ms, rest[0]))
        heapq.heapify(state._expiry)
        return state
