"""A faust-streaming consumer that puts every input partition back where processing stands after a rebalance.

The hazard it closes (faust-streaming 0.15 with aiokafka): while faust restores its tables after an
assignment it resumes fetching, with the input partitions paused only in its own bookkeeping. aiokafka
fetches them anyway, faust drops those records as not active, and aiokafka's position moves past them.
faust then seeks every partition to its committed offset, which brings the dropped records back, except where
nothing is committed (a new consumer group, or one killed before its first commit) or the committed offset
is 0: aiokafka's ``seek_to_committed`` leaves such a partition where it is, so its dropped records are never
processed. Seen as an aggregator restarted after ``kill -9`` that processed nothing at all, or lost the last
records of a partition.

``SeekingConsumer`` seeks those partitions to their beginning too, which is where ``consumer_auto_offset_reset
= "earliest"`` (the aggregator's setting) would have started them; records read twice are replays, which the
stages recognise (``dedupe``, ``panes``). Changelog partitions are left to faust, which seeks them itself
before it reads them.

A second hazard lies in faust's fetch loop: it iterates a batch of fetched records with awaits in between
and tests each record against the set of active partitions, the very set that resuming a partition adds to.
A batch fetched from the old position while the input partitions were inactive (their records skipped) is
then delivered from the middle on, once the seek is done and the inputs resumed: faust takes the jump to
its first record as a gap in the offsets (as left by compaction), commits across it, and drops the records
the seek brought back as already read. Seen as an aggregator restarted after ``kill -9`` that never counted
a few dozen posts of one partition. So ``SeekingConsumer.getmany`` abandons a batch fetched before the
latest seek; its records are fetched again from the position the seek set.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any, TypeVar, cast

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer

T = TypeVar("T")


class _SeekingThread(AIOKafkaConsumerThread):
    async def seek_to_committed(self) -> Mapping[Any, int]:
        return await self.call_thread(self._seek_to_committed_or_beginning)

    async def _seek_to_committed_or_beginning(self) -> Mapping[Any, int]:
        changelogs = set(self.app.tables.changelog_topics)
        return await seek_to_committed_or_beginning(self._ensure_consumer(), skip_topics=changelogs)


async def seek_to_committed_or_beginning(consumer: Any, skip_topics: set[str]) -> Mapping[Any, int]:
    """Seek every assigned partition to its committed offset, or to its beginning when none (or 0) is.

    ``consumer`` is an ``aiokafka.AIOKafkaConsumer``; partitions of ``skip_topics`` get only the first part.
    Returns the committed offsets, as ``seek_to_committed`` does.
    """
    committed = await consumer.seek_to_committed()
    unplaced = [
        tp
        for tp, offset in committed.items()
        if (offset is None or offset <= 0) and tp.topic not in skip_topics
    ]
    if unplaced:
        await consumer.seek_to_beginning(*unplaced)
    return committed


class SeekingConsumer(Consumer):
    """faust's aiokafka consumer whose ``perform_seek`` also places partitions with nothing committed.

    faust resumes the input partitions just before it seeks them; records still arriving from the old
    position in between would be processed ahead of the earlier ones the seek brings back, and a stage
    that skips what is below its last applied offset would then skip those. So the input partitions stay
    paused until the seek is done: what arrives meanwhile is dropped and fetched again, in order.
    """

    seeks = 0
    """Seeks begun or ended so far: a batch fetched under another count predates the latest seek."""

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _SeekingThread(self, loop=self.loop, beacon=self.beacon)

    async def perform_seek(self) -> None:
        """Seek every partition (``_SeekingThread``) with the input partitions paused meanwhile."""
        inputs = {tp for tp in self.assignment() if not self._is_changelog_tp(tp)}
        resume = inputs - self._paused_partitions
        self.seeks += 1
        self.pause_partitions(inputs)
        try:
            await super().perform_seek()
        finally:
            self.seeks += 1
            self.resume_partitions(resume)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        """faust's batch of fetched records, abandoned at the first record after a seek began or ended."""
        async for record in until_seek(super().getmany(timeout), lambda: self.seeks):
            yield record


async def until_seek(batch: AsyncIterator[T], seeks: Callable[[], int]) -> AsyncIterator[T]:
    """The records of ``batch`` until ``seeks()`` differs from its value at the start; ``batch`` is closed."""
    start = seeks()
    try:
        async for record in batch:
            if seeks() != start:
                return  # fetched from a position a seek moved away from: read again from the new one
            yield record
    finally:
        await cast(AsyncGenerator[T, None], batch).aclose()


def install(app: Any) -> None:
    """Make ``app`` create ``SeekingConsumer``; call before the app starts (needs ``earliest`` reset)."""
    if app.conf.consumer_auto_offset_reset != "earliest":
        raise ValueError(
            "SeekingConsumer seeks unplaced partitions to the beginning: use earliest offset reset"
        )
    app.transport.Consumer = SeekingConsumer
