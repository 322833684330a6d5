"""The aggregator's producer: a flush before a commit waits for every queued write and fails on a lost one."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.transport.producer import ProducerBuffer

from stream_ner.aggregate import faust_producer
from stream_ner.aggregate.faust_producer import DrainingBuffer, DrainingProducer
from stream_ner.errors import DeliveryError

HAND_OVER_S = 0.25  # longer than the 0.1 s after which faust's own buffer flush gives up


class SlowClient:
    """Stands in for the channel a queued message is published through: each hand-over takes a while."""

    def __init__(self) -> None:
        self.taken: list[int] = []

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        await asyncio.sleep(HAND_OVER_S)
        self.taken.append(fut.n)


def messages(client: SlowClient, n: int) -> list[Any]:
    return [SimpleNamespace(n=i, message=SimpleNamespace(channel=client)) for i in range(n)]


async def flushed_after_put(buffer: ProducerBuffer, n: int) -> tuple[list[int], int]:
    """Put ``n`` slow messages, flush, and return what the client had taken when flush returned."""
    client = SlowClient()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    await buffer.start()
    try:
        for message in messages(client, n):
            buffer.put(message)
        await buffer.flush()
        return list(client.taken), buffer.size
    finally:
        while len(client.taken) < n:  # faust's buffer refuses to stop with messages queued
            await asyncio.sleep(HAND_OVER_S)
        await buffer.stop()


def test_fausts_own_buffer_flush_returns_with_writes_still_queued():
    """The hazard the draining buffer exists for, in the faust-streaming version the project pins."""
    taken, queued = asyncio.run(flushed_after_put(ProducerBuffer(), 4))
    assert len(taken) < 4 and queued > 0


def test_draining_buffer_flush_returns_only_once_every_write_was_handed_over():
    taken, queued = asyncio.run(flushed_after_put(DrainingBuffer(), 4))
    assert taken == [0, 1, 2, 3]
    assert queued == 0


def test_draining_buffer_flush_of_an_empty_buffer_returns_at_once():
    async def flush_empty() -> None:
        buffer = DrainingBuffer()
        await asyncio.wait_for(buffer.flush(), timeout=0.05)

    asyncio.run(flush_empty())


def app_producer() -> DrainingProducer:
    app = faust.App("producer-test", broker="kafka://127.0.0.1:9", autodiscover=False, web_enabled=False)
    faust_producer.install(app)
    producer = app.producer
    assert isinstance(producer, DrainingProducer) and isinstance(producer.buffer, DrainingBuffer)
    return producer


def test_a_write_not_delivered_fails_the_flush_a_commit_waits_on():
    async def flush_after(outcome: BaseException | None) -> None:
        producer = app_producer()
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        delivery.add_done_callback(producer._delivered)
        if outcome is None:
            delivery.set_result("metadata")
        else:
            delivery.set_exception(outcome)
        await producer.flush()

    asyncio.run(flush_after(None))
    with pytest.raises(DeliveryError, match="MessageSizeTooLarge"):
        asyncio.run(flush_after(RuntimeError("MessageSizeTooLarge")))


def test_install_refuses_the_threaded_producer():
    app = faust.App("threaded-test", autodiscover=False, web_enabled=False, producer_threaded=True)
    with pytest.raises(ValueError, match="producer_threaded"):
        faust_producer.install(app)
