"""Fan-out to the connected browsers: each update is encoded once and queued to every subscriber.

A browser subscribes to a few channels (``board:<window>``, ``feed``, ``alerts``). ``publish`` puts one
server-sent-event frame (bytes) in the queue of every subscriber of the channel; nothing is read from
Redis or Kafka per browser. A browser too slow to drain its queue (``QUEUE_FRAMES`` frames behind) is
dropped: its stream ends, ``EventSource`` reconnects and starts again from a fresh snapshot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import orjson

QUEUE_FRAMES = 64

CLOSED = b""
"""The frame that ends a subscriber's stream."""


def frame(event: str, data: Any) -> bytes:
    """One server-sent event: ``event: NAME`` and the data as one line of JSON."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class Subscription:
    """The queue of one browser and the channels it listens to."""

    def __init__(self, channels: Iterable[str]) -> None:
        self.channels = frozenset(channels)
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_FRAMES)


class Hub:
    """Channels to subscribers; used from the event loop's thread only."""

    def __init__(self) -> None:
        self.subscribers: set[Subscription] = set()

    def subscribe(self, channels: Iterable[str]) -> Subscription:
        """A new subscription to ``channels``; ``unsubscribe`` it when the browser leaves."""
        subscription = Subscription(channels)
        self.subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget a subscription (idempotent)."""
        self.subscribers.discard(subscription)

    def publish(self, channel: str, data: bytes) -> int:
        """Queue the frame ``data`` to every subscriber of ``channel``; returns how many got it."""
        sent = 0
        for subscription in list(self.subscribers):
            if channel not in subscription.channels:
                continue
            try:
                subscription.queue.put_nowait(data)
                sent += 1
            except asyncio.QueueFull:  # too slow: end its stream, it reconnects to a fresh snapshot
                self.subscribers.discard(subscription)
                while not subscription.queue.empty():
                    subscription.queue.get_nowait()
                subscription.queue.put_nowait(CLOSED)
        return sent
