"""The aggregator's consumer fix (``faust_seek``) against a real broker, with a real aiokafka consumer."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka import Producer

from loadtest.aggregate_check import create_topics
from stream_ner.aggregate.faust_seek import seek_to_committed_or_beginning


def test_partitions_with_nothing_committed_go_back_to_the_beginning(kafka_bootstrap):
    """Read to the end without committing (as records faust drops are), then seek: back to 0, not left at
    the end; a partition with a committed offset goes to that offset; skipped topics stay where they are."""
    tag = uuid.uuid4().hex[:8]
    topic, changelog = f"seek-{tag}", f"seek-{tag}-changelog"
    create_topics(kafka_bootstrap, [topic, changelog], partitions=2)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for name in (topic, changelog):
        for i in range(10):
            producer.produce(name, value=b"x", partition=i % 2)
    assert producer.flush(30) == 0

    async def run() -> dict[TopicPartition, int]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap,
            group_id=f"seek-{tag}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        tps = [TopicPartition(name, p) for name in (topic, changelog) for p in (0, 1)]
        await consumer.start()
        try:
            consumer.assign(tps)
            read = 0
            while read < 20:  # everything, as a fetch whose records are dropped would
                batch = await consumer.getmany(timeout_ms=2000)
                read += sum(len(records) for records in batch.values())
            await consumer.commit({TopicPartition(topic, 1): 3})
            committed = await seek_to_committed_or_beginning(consumer, skip_topics={changelog})
            assert committed[TopicPartition(topic, 0)] is None and committed[TopicPartition(topic, 1)] == 3
            assert not consumer.paused(), "paused in the client only while the seek runs"
            return {tp: await consumer.position(tp) for tp in tps}
        finally:
            await consumer.stop()

    positions = asyncio.run(run())
    assert positions[TopicPartition(topic, 0)] == 0  # nothing committed: from the start, nothing skipped
    assert positions[TopicPartition(topic, 1)] == 3  # committed: from there, as faust expects
    assert positions[TopicPartition(changelog, 0)] == 5  # left alone: faust places changelogs itself
    assert positions[TopicPartition(changelog, 1)] == 5
