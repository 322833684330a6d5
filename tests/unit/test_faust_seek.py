"""The aggregator's consumer abandons a fetched batch once a seek begins or ends while it is delivered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from stream_ner.aggregate.faust_seek import until_seek


class Batch:
    """A fetched batch delivered record by record; a seek runs just before record ``seek_before`` is."""

    def __init__(self, offsets: list[int], seek_before: int | None) -> None:
        self.offsets = offsets
        self.seek_before = seek_before
        self.seeks = 0
        self.closed = False

    async def records(self) -> AsyncIterator[int]:
        try:
            for index, offset in enumerate(self.offsets):
                await asyncio.sleep(0)  # the fetch and the fetch loop await; a seek may run meanwhile
                if index == self.seek_before:
                    self.seeks += 1
                yield offset
        finally:
            self.closed = True


def delivered(batch: Batch) -> list[int]:
    async def collect() -> list[int]:
        return [offset async for offset in until_seek(batch.records(), lambda: batch.seeks)]

    return asyncio.run(collect())


def test_a_batch_with_no_seek_is_delivered_whole():
    batch = Batch([207, 208, 209, 210], seek_before=None)
    assert delivered(batch) == [207, 208, 209, 210]
    assert batch.closed


def test_the_rest_of_a_batch_fetched_before_a_seek_is_never_delivered():
    """Records from the old position would make faust commit across the records the seek brought back."""
    batch = Batch([207, 208, 209, 210], seek_before=2)
    assert delivered(batch) == [207, 208]
    assert batch.closed  # the fetch generator is closed, not left suspended


def test_a_seek_during_the_fetch_abandons_the_whole_batch():
    batch = Batch([207, 208], seek_before=0)
    assert delivered(batch) == []
    assert batch.closed
