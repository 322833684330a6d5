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

Two more hazards come from the same bookkeeping. faust tests each record of a fetched batch against its set
of active partitions while it delivers them, so a partition paused while a fetch is in flight has the
fetched records consumed and dropped: a seek to the committed offset repairs that, but not for records
fetched from the position the seek set. And faust resumes the input partitions before it seeks them, with
the seek in a task of its own, so records fetched from the position the dropped records left behind can be
processed first; the earlier ones the seek brings back then arrive below the by-brand stage's high-water
marks (``panes``, rule 3) and are skipped as replays. Both were seen as a restarted aggregator that never
counted a few dozen posts of a partition. So ``SeekingConsumer`` defers faust's resuming of an input
partition to the end of the seek that follows it, and pauses the input partitions in aiokafka itself
(which returns none of their records and leaves their position alone) while the seek runs, never in
faust's bookkeeping.

Stopping with every broker gone: aiokafka's ``stop``, closing while a fetch waits to retry, raises its fetch
task's cancellation, which ended faust's consumer thread without a stop; faust then waited 60 s for it. The
thread here takes that cancellation and gives aiokafka's ``stop`` at most ``CLOSE_SECONDS``. Nothing depends
on the commit that stop may skip: a restart replays from the one before, and replays count nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer, ConsumerThread

log = logging.getLogger(__name__)
MACHINERY = logging.getLogger(f"faust.{__name__}")
"""The logger of the faust services below: their start and stop lines are faust's, held with its loggers."""

CLOSE_SECONDS = 10.0


class _SeekingThread(AIOKafkaConsumerThread):
    logger = MACHINERY

    async def on_thread_stop(self) -> None:
        # faust's own: stop the method queue, then the consumer, here with a bound on the second
        await ConsumerThread.on_thread_stop(self)
        if self._consumer is None:
            return
        try:
            await asyncio.wait_for(self._consumer.stop(), CLOSE_SECONDS)
        except TimeoutError:
            log.warning(
                "the consumer did not close within %.0f s (brokers unreachable?): stopping without it",
                CLOSE_SECONDS,
            )
        except asyncio.CancelledError:
            # aiokafka's fetcher, closed while a fetch waits to retry, raises the cancellation of its own
            # fetch task; left to escape, it kills this thread, and faust waits 60 s for it to stop.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise

    async def seek_to_committed(self) -> Mapping[Any, int]:
        return await self.call_thread(self._seek_to_committed_or_beginning)

    async def _seek_to_committed_or_beginning(self) -> Mapping[Any, int]:
        changelogs = set(self.app.tables.changelog_topics)
        return await seek_to_committed_or_beginning(self._ensure_consumer(), skip_topics=changelogs)


async def seek_to_committed_or_beginning(consumer: Any, skip_topics: set[str]) -> Mapping[Any, int]:
    """Seek every assigned partition to its committed offset, or to its beginning when none (or 0) is.

    ``consumer`` is an ``aiokafka.AIOKafkaConsumer``; partitions of ``skip_topics`` get only the first part.
    The others are paused in the client while the seek runs, so that no fetch returns their records in
    between. Returns the committed offsets, as ``seek_to_committed`` does.
    """
    inputs = [tp for tp in consumer.assignment() if tp.topic not in skip_topics]
    already_paused = consumer.paused()
    consumer.pause(*inputs)
    try:
        committed = await consumer.seek_to_committed()
        unplaced = [
            tp
            for tp, offset in committed.items()
            if (offset is None or offset <= 0) and tp.topic not in skip_topics
        ]
        if unplaced:
            await consumer.seek_to_beginning(*unplaced)
    finally:
        consumer.resume(*[tp for tp in inputs if tp not in already_paused])
    return committed


class SeekingConsumer(Consumer):
    """faust's aiokafka consumer that also places partitions with nothing committed (module doc).

    Its input partitions resume only once a seek has placed them.
    """

    logger = MACHINERY

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.deferred: set[Any] = set()
        super().__init__(*args, **kwargs)

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _SeekingThread(self, loop=self.loop, beacon=self.beacon)

    def resume_partitions(self, tps: Iterable[Any]) -> None:
        """Resume changelog partitions now; input partitions at the end of the next seek."""
        tps = set(tps)
        inputs = {tp for tp in tps if not self._is_changelog_tp(tp)}
        self.deferred |= inputs
        super().resume_partitions(tps - inputs)

    async def perform_seek(self) -> None:
        """Seek every partition (``_SeekingThread``), then resume the input partitions faust resumed."""
        try:
            await super().perform_seek()
        finally:
            resume, self.deferred = self.deferred & set(self.assignment()), set()
            super().resume_partitions(resume)


def install(app: Any) -> None:
    """Make ``app`` create ``SeekingConsumer``; call before the app starts (needs ``earliest`` reset)."""
    if app.conf.consumer_auto_offset_reset != "earliest":
        raise ValueError(
            "SeekingConsumer seeks unplaced partitions to the beginning: use earliest offset reset"
        )
    app.transport.Consumer = SeekingConsumer
