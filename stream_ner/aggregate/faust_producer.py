"""A faust-streaming producer whose flush waits for every message, so a commit never outruns its writes.

The hazard it closes (faust-streaming 0.15 with aiokafka): table changelog writes go through faust's
``ProducerBuffer``, a queue that a background task hands to aiokafka one message at a time. Before it
commits offsets, faust flushes the producer, and the buffer's flush returns as soon as no message left the
queue for 0.1 s, with the rest still queued. aiokafka's own flush then waits only for what it was handed.
Whenever one hand-over takes longer (aiokafka's accumulator full during a broker outage, or a busy event
loop catching up a backlog), offsets are committed ahead of changelog writes of the records they cover; a
crash then restores a state that lacks those records and replays from past them: counts lost for good.
Seen as an aggregator killed during a catch-up that restored short counts.

``DrainingBuffer`` counts messages from ``put`` until aiokafka has taken them, and its ``flush`` waits for
that count to reach zero. A message aiokafka reports as not delivered (faust only logs it) is kept too:
``DrainingProducer.flush`` raises ``DeliveryError`` for it, so the commit it precedes fails and the
aggregator stops instead of committing past a write it lost; the restart replays from the last commit.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from faust.transport.drivers.aiokafka import Producer
from faust.transport.producer import ProducerBuffer

from stream_ner.errors import DeliveryError

MACHINERY = logging.getLogger(f"faust.{__name__}")
"""The logger of the faust services below: their start and stop lines are faust's, held with its loggers."""


class DrainingBuffer(ProducerBuffer):
    """faust's producer buffer whose ``flush`` returns only once every message was handed to the client."""

    logger = MACHINERY

    def __post_init__(self) -> None:
        super().__post_init__()
        self.unsent = 0
        self.drained = asyncio.Event()
        self.drained.set()

    def put(self, fut: Any) -> None:
        """Queue a message; it counts as unsent until the client took it."""
        self.unsent += 1
        self.drained.clear()
        super().put(fut)

    async def _send_pending(self, fut: Any) -> None:
        try:
            await super()._send_pending(fut)
        finally:
            self.unsent -= 1
            if self.unsent == 0:
                self.drained.set()

    async def flush(self) -> None:
        """Wait until every message put so far has been handed to the client (or failed to be)."""
        await self.drained.wait()


class DrainingProducer(Producer):
    """faust's aiokafka producer with a ``DrainingBuffer`` and delivery failures raised by ``flush``."""

    logger = MACHINERY

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.buffer = DrainingBuffer(loop=self.loop, beacon=self.beacon)
        self.buffer.app = self.app
        self.undelivered: BaseException | None = None

    async def send(self, *args: Any, **kwargs: Any) -> Any:
        """Hand a message to the client; a failed delivery is remembered for the next ``flush``."""
        delivery = await super().send(*args, **kwargs)
        delivery.add_done_callback(self._delivered)  # type: ignore[attr-defined]
        return delivery

    def _delivered(self, delivery: asyncio.Future[Any]) -> None:
        if not delivery.cancelled() and delivery.exception() is not None and self.undelivered is None:
            self.undelivered = delivery.exception()

    async def flush(self) -> None:
        """Flush the buffer and the client; raise ``DeliveryError`` if any message was not delivered."""
        await super().flush()
        await asyncio.sleep(0)  # delivery callbacks of the last batch run before the check
        if self.undelivered is not None:
            raise DeliveryError(f"a write of the aggregator was not delivered: {self.undelivered!r}")


def install(app: Any) -> None:
    """Make ``app`` create a ``DrainingProducer``; call before the app starts."""
    if app.conf.producer_threaded:
        raise ValueError("DrainingProducer counts messages in the event loop: producer_threaded must be off")
    app.transport.Producer = DrainingProducer
