"""Brand aggregates to the ``brand-aggregates`` topic through librdkafka, a batch at a time.

The aggregator's input, state and changelogs go through faust; its output does not, because it is the
widest stream the aggregator writes (every changed window on every flush) and librdkafka encodes and
batches it in C, off the event loop, at a fraction of the cost of a Python client. Records are keyed
``<brand>|<window>|<window start>`` and hold absolute values, so writing one twice is harmless: a batch
that fails is raised as ``KafkaUnavailable`` and written again, whole, by the ``Outbox``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson

from stream_ner.aggregate.outbox import Record
from stream_ner.errors import KafkaUnavailable
from stream_ner.kafka import client_config
from stream_ner.settings import KafkaSettings


def record_key(record: Record) -> bytes:
    """``<brand>|<window>|<window start>``, as ``BrandAggregate.key``."""
    return f"{record['brand']}|{record['window']}|{record['window_start']}".encode()


class TopicSink:
    """An idempotent producer (``acks=all``) for one topic; ``write`` returns once the broker has it all."""

    def __init__(self, kafka: KafkaSettings, topic: str, timeout_s: float = 30.0) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.timeout_s = timeout_s
        self.producer = Producer(
            client_config(kafka)
            | {"enable.idempotence": True, "acks": "all", "linger.ms": 20, "compression.type": "lz4"}
        )

    async def write(self, records: Sequence[Record]) -> None:
        """Produce every record and wait for the broker's acknowledgements (in a thread)."""
        failed: list[Any] = []

        def delivered(error: Any, _message: Any) -> None:
            if error is not None:
                failed.append(error)

        for record in records:
            while True:
                try:
                    self.producer.produce(
                        self.topic, key=record_key(record), value=orjson.dumps(record), on_delivery=delivered
                    )
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    await asyncio.to_thread(self.producer.poll, 0.1)
        left = await asyncio.to_thread(self.producer.flush, self.timeout_s)
        if left or failed:
            reason = failed[0] if failed else f"{left} records unacknowledged after {self.timeout_s:.0f} s"
            raise KafkaUnavailable(f"cannot write {self.topic}: {reason}")

    def close(self) -> None:
        """Deliver what is queued (bounded)."""
        self.producer.flush(self.timeout_s)
