"""The aggregator's consumer resumes an input partition only once a seek has placed it (``faust_seek``).

faust resumes the input partitions after a rebalance and then seeks them in a task of its own; records
fetched in between come from wherever aiokafka's position was left and would be processed before the ones
the seek brings back. The seek itself is exercised on a real broker in ``tests/integration``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import faust
import pytest
from faust.types import TP

from stream_ner.aggregate import faust_seek
from stream_ner.aggregate.faust_seek import SeekingConsumer

INPUT = TP("entities", 0)


@contextmanager
def consumer(seek: Any) -> Iterator[SeekingConsumer]:
    """The app's consumer, assigned ``INPUT``, whose seek (what the broker would do) is ``seek``."""
    app = faust.App("seek-test", broker="kafka://127.0.0.1:9", autodiscover=False, web_enabled=False)
    faust_seek.install(app)
    made = app.consumer
    assert isinstance(made, SeekingConsumer)
    made.assignment = lambda: {INPUT}  # type: ignore[method-assign]
    made.seek_to_committed = seek  # type: ignore[method-assign]
    try:
        yield made
    finally:
        made._thread.thread_loop.close()  # created with the consumer, never started here


async def placed() -> dict[TP, int]:
    return {INPUT: 7}


def test_an_input_partition_faust_resumes_stays_paused_until_the_seek_has_placed_it():
    async def scenario() -> None:
        with consumer(placed) as c:
            c.pause_partitions({INPUT})  # as faust does while it restores the tables
            c.resume_partitions({INPUT})  # as faust does just before it starts the seek
            assert INPUT in c._paused_partitions and INPUT in c.deferred
            await c.perform_seek()
            assert INPUT not in c._paused_partitions and not c.deferred

    asyncio.run(scenario())


def test_a_seek_that_fails_still_resumes_the_partitions_it_held():
    async def broken() -> dict[TP, int]:
        raise ConnectionError("broker gone")

    async def scenario() -> None:
        with consumer(broken) as c:
            c.pause_partitions({INPUT})
            c.resume_partitions({INPUT})
            with pytest.raises(ConnectionError):
                await c.perform_seek()
            assert INPUT not in c._paused_partitions and not c.deferred

    asyncio.run(scenario())


def test_changelog_partitions_resume_at_once():
    async def scenario() -> None:
        with consumer(placed) as c:
            table = c.app.Table("state", partitions=1)
            changelog = TP(table.changelog_topic.get_topic_name(), 0)
            c.pause_partitions({changelog})
            c.resume_partitions({changelog})
            assert changelog not in c._paused_partitions and not c.deferred

    asyncio.run(scenario())
