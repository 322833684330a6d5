"""A three-broker cluster: topics as specified (replication factor 3, min.insync.replicas 2), a broker
killed with SIGKILL while acks=all producing goes on, and the broker restarted on its data rejoining."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from stream_ner.settings import Settings, TopicSettings
from stream_ner.topics import apply, load_specs
from tests.integration.conftest import consume_all


def _settings(tag: str) -> Settings:
    """The project's specs, unchanged (no replication override), under names of this test's own."""
    return Settings(
        topics=TopicSettings(
            raw_posts=f"{tag}.raw",
            entities=f"{tag}.entities",
            dlq=f"{tag}.dlq",
            brand_aggregates=f"{tag}.aggregates",
            brand_alerts=f"{tag}.alerts",
        )
    )


def _produce(bootstrap: str, topic: str, values: list[bytes], timeout: float = 60.0) -> list[str]:
    """Produce with acks=all (idempotent); returns the delivery errors (none expected)."""
    errors: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for value in values:
        producer.produce(topic, value=value, on_delivery=lambda e, _m: e and errors.append(str(e)))
        producer.poll(0)
    left = producer.flush(timeout)
    return errors + ([f"{left} records not acknowledged in {timeout} s"] if left else [])


def _isr(admin: AdminClient, topic: str) -> dict[int, tuple[int, list[int]]]:
    """partition -> (leader, in-sync replicas)."""
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    return {p: (meta.leader, sorted(meta.isrs)) for p, meta in partitions.items()}


def _wait(condition, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < timeout, f"{what} not within {timeout} s"
        time.sleep(0.25)
    return time.monotonic() - began


def _topic_config(admin: AdminClient, topic: str, timeout: float = 10.0) -> dict:
    """The topic's configs. ``apply`` returns once one broker's metadata has the topic led; another broker
    may not know it yet for a moment (UNKNOWN_TOPIC_OR_PART): asked again until ``timeout``."""
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return admin.describe_configs([resource])[resource].result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_kill_9_of_a_leader_loses_no_acknowledged_record_and_the_restarted_broker_rejoins(
    kafka_cluster, report
):
    bootstrap = kafka_cluster.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    assert len(kafka_cluster.nodes) == 3 and len(admin.list_topics(timeout=10).brokers) == 3
    settings = _settings(f"cluster-{uuid.uuid4().hex[:8]}")
    specs = load_specs(settings)
    apply(admin, specs)
    raw = settings.topics.raw_posts
    config = _topic_config(admin, raw)
    assert config["min.insync.replicas"].value == "2"
    isr = _isr(admin, raw)
    assert len(isr) == 6 and all(replicas == [1, 2, 3] for _, replicas in isr.values()), isr

    assert _produce(bootstrap, raw, [f"before-{i}".encode() for i in range(300)]) == []
    victim = isr[0][0]  # the leader of partition 0, and of others
    began = time.monotonic()
    kafka_cluster.stop_node(victim, kill=True)
    restarted = None
    try:
        survivors = ",".join(n.address for n in kafka_cluster.nodes if n.node_id != victim)
        errors = _produce(survivors, raw, [f"during-{i}".encode() for i in range(300)])
        produced_during = time.monotonic() - began
        assert errors == []
        isr = _isr(admin, raw)
        assert all(leader != victim for leader, _ in isr.values()), isr
        records = consume_all(survivors, raw, 600, timeout=60)
        assert sorted(r.value for r in records) == sorted(
            [f"before-{i}".encode() for i in range(300)] + [f"during-{i}".encode() for i in range(300)]
        )
        began = time.monotonic()
        restarted = kafka_cluster.start_node(victim)
        started = time.monotonic() - began
    finally:
        if restarted is None:  # the session's next test finds all three brokers
            kafka_cluster.start_node(victim)
    assert (
        next(n for n in restarted.nodes if n.node_id == victim).pid
        != next(n for n in kafka_cluster.nodes if n.node_id == victim).pid
    )
    rejoined = _wait(
        lambda: all(replicas == [1, 2, 3] for _, replicas in _isr(admin, raw).values()),
        120,
        f"broker {victim} back in every in-sync replica set",
    )
    report(
        f"cluster: kill -9 of broker {victim}: 300 acks=all records delivered {produced_during:.1f} s after "
        f"the kill; restart on its data {started:.1f} s, back in every ISR {rejoined:.1f} s later"
    )
