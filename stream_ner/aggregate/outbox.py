"""Delivery of window states to one sink: coalesced, retried with backoff, never dropped.

The aggregation agent marks window keys as changed; the outbox's loop wakes every ``interval_s``, takes all
marked keys, reads their *current* state and writes it to the sink. Values are absolute, so only the latest
state of a key matters and many updates coalesce into one write. When the sink fails with a
``TransientError``, the loop waits (exponential backoff up to ``max_backoff_s``) and writes the same keys
again, re-read with whatever changed meanwhile: nothing is lost while Redis or Kafka is away, and memory
stays bounded by the number of live windows. A key whose final state (window closed) has been written is
reported by ``final_written``; the agent deletes a closed window only when every outbox has written it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import Any

from stream_ner.errors import TransientError

log = logging.getLogger(__name__)

Record = dict[str, Any]
"""A ``BrandAggregate`` as a plain dict (its schema is ``stream_ner.messages.BrandAggregate``)."""
Snapshot = Callable[[Any], Record | None]
Write = Callable[[Sequence[Record]], Awaitable[None]]


class Outbox:
    """Keys waiting to reach one sink."""

    def __init__(
        self,
        name: str,
        write: Write,
        *,
        interval_s: float,
        final_only: bool = False,
        max_batch: int = 2000,
        max_backoff_s: float = 5.0,
        on_written: Callable[[str, int], None] | None = None,
        on_error: Callable[[str, Exception], None] | None = None,
    ) -> None:
        self.name = name
        self.write = write
        self.interval_s = interval_s
        self.final_only = final_only
        self.max_batch = max_batch
        self.max_backoff_s = max_backoff_s
        self.on_written = on_written
        self.on_error = on_error
        self.pending: dict[Hashable, None] = {}
        self.inflight: set[Hashable] = set()
        self.final_written: set[Hashable] = set()

    def mark(self, keys: Iterable[Hashable]) -> None:
        """These keys changed (or closed): write their state soon."""
        for key in keys:
            self.pending[key] = None
            self.final_written.discard(key)

    def busy(self, key: Hashable) -> bool:
        """Whether a state of ``key`` is still to be written."""
        return key in self.pending or key in self.inflight

    def forget(self, key: Hashable) -> None:
        """The key was deleted from the state table."""
        self.pending.pop(key, None)
        self.final_written.discard(key)

    def drop(self, revoked: Callable[[Any], bool]) -> None:
        """Forget the keys of a revoked partition: their new owner writes them."""
        for key in [k for k in self.pending if revoked(k)]:
            del self.pending[key]
        self.final_written = {k for k in self.final_written if not revoked(k)}

    async def run(self, snapshot: Snapshot, after: Callable[[], None] | None = None) -> None:
        """Write marked keys forever, calling ``after`` once the marked keys are written; cancel to stop."""
        while True:
            await asyncio.sleep(self.interval_s)
            while self.pending:
                await self.flush(snapshot)
            if after is not None:
                after()

    async def flush(self, snapshot: Snapshot) -> None:
        """Write up to ``max_batch`` marked keys, retrying until the sink takes them."""
        keys = list(self.pending)[: self.max_batch]
        for key in keys:
            del self.pending[key]
        self.inflight = set(keys)
        delay = 0.1
        try:
            while True:
                records = self._records(keys, snapshot)
                try:
                    if records:
                        await self.write([r for _, r in records])
                    break
                except TransientError as exc:
                    if self.on_error:
                        self.on_error(self.name, exc)
                    log.warning("%s unavailable, retrying in %.1fs: %s", self.name, delay, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.max_backoff_s)
                    # keys changed meanwhile join this batch, with their newest state
                    for key in [k for k in self.pending if k in self.inflight]:
                        del self.pending[key]
            if delay > 0.1:
                log.info("%s available again", self.name)
            for key, record in records:
                if record["final"]:
                    self.final_written.add(key)
            if self.on_written:
                self.on_written(self.name, len(records))
        finally:
            self.inflight = set()

    def _records(self, keys: list[Hashable], snapshot: Snapshot) -> list[tuple[Hashable, Record]]:
        records = []
        for key in keys:
            record = snapshot(key)
            if record is None or (self.final_only and not record["final"]):
                continue
            records.append((key, record))
        return records
