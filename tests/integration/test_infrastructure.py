"""The local broker and Redis the integration tests run on behave like the real thing."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import defaultdict

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from stream_ner import localstack
from stream_ner.topics import wait_for_leaders
from tests.integration.conftest import consume_all


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    failures = []
    for key, value in records:
        producer.produce(topic, value, key, on_delivery=lambda err, _msg: err and failures.append(err))
    assert producer.flush(30) == 0
    assert failures == []


def _read_assigned(bootstrap: str, topic: str, partitions: int) -> list[bytes]:
    """Every value of ``topic``, read by assignment (no group coordinator involved)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    values = []
    for _ in range(20):
        values += [m.value() for m in consumer.consume(10, timeout=0.5) if not m.error()]
        if values:
            break
    consumer.close()
    return values


def test_every_test_here_is_marked_integration(request):
    assert request.node.get_closest_marker("integration") is not None


def test_keyed_records_round_trip_through_three_partitions_in_key_order(kafka_bootstrap, admin, make_topics):
    [topic] = make_topics(3)
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 3
    sent = [(f"user-{i % 30}".encode(), f"post-{i}".encode()) for i in range(600)]
    _produce(kafka_bootstrap, topic, sent)

    records = consume_all(kafka_bootstrap, topic, len(sent), timeout=60)

    assert sorted((r.key, r.value) for r in records) == sorted(sent)
    assert {r.partition for r in records} == {0, 1, 2}
    by_key = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key[r.key].append(r)
    for key, rs in by_key.items():
        assert len({r.partition for r in rs}) == 1, f"{key!r} spread over partitions"
        assert [r.value for r in rs] == [v for k, v in sent if k == key], f"{key!r} out of order"


def test_a_consumer_group_resumes_from_its_committed_offsets(kafka_bootstrap, topic_factory, request):
    topic = topic_factory(3)
    _produce(kafka_bootstrap, topic, [(str(i).encode(), str(i).encode()) for i in range(90)])
    group = f"group-{request.node.name}"[:60]
    config = {
        "bootstrap.servers": kafka_bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }

    first = Consumer(config)
    first.subscribe([topic])
    seen: list[bytes] = []
    while len(seen) < 40:
        seen += [m.value() for m in first.consume(40 - len(seen), timeout=1.0) if not m.error()]
    first.commit(asynchronous=False)
    committed = first.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
    first.close()
    assert sum(max(tp.offset, 0) for tp in committed) == 40

    second = Consumer(config)
    second.subscribe([topic])
    rest: list[bytes] = []
    for _ in range(60):
        rest += [m.value() for m in second.consume(90, timeout=0.5) if not m.error()]
        if len(seen) + len(rest) >= 90:
            break
    second.close()
    assert sorted(seen + rest, key=int) == [str(i).encode() for i in range(90)]


def test_redis_answers_and_keys_stay_under_the_test_prefix(redis_client, redis_prefix):
    assert redis_client.ping() is True
    with redis_client.pipeline(transaction=True) as pipe:
        pipe.hincrby(f"{redis_prefix}counts", "acme", 2)
        pipe.hincrby(f"{redis_prefix}counts", "acme", 3)
        pipe.zadd(f"{redis_prefix}top", {"acme": 5, "globex": 7})
        pipe.set(f"{redis_prefix}ttl", "x", ex=60)
        pipe.execute()
    assert redis_client.hget(f"{redis_prefix}counts", "acme") == b"5"
    assert redis_client.zrevrange(f"{redis_prefix}top", 0, -1) == [b"globex", b"acme"]
    assert 0 < redis_client.ttl(f"{redis_prefix}ttl") <= 60
    assert all(k.startswith(redis_prefix.encode()) for k in redis_client.scan_iter(match=f"{redis_prefix}*"))


class _Records(logging.Handler):
    """Keeps the message of every record a client logs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _first_producer_id_wait(bootstrap: str) -> list[str]:
    """What the first idempotent producer of a cluster logs until it has its producer id."""
    records = _Records()
    logger = logging.getLogger(f"test.librdkafka.{uuid.uuid4().hex[:8]}")
    logger.addHandler(records)
    logger.propagate = False
    assigned = []

    def on_stats(raw: str) -> None:
        assigned.append(json.loads(raw)["eos"]["idemp_state"] == "Assigned")

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "statistics.interval.ms": 50,
            "stats_cb": on_stats,
            "logger": logger,
        }
    )
    deadline = time.monotonic() + 30
    while not any(assigned) and time.monotonic() < deadline:
        producer.poll(0.05)
    assert any(assigned), records.messages
    return records.messages


def test_named_instances_run_beside_the_session_ones_and_are_found_again(kafka_bootstrap, redis_url):
    name = f"test-{uuid.uuid4().hex[:8]}"
    with localstack.start_redis(name=name) as extra_redis, localstack.start_kafka(name=name) as extra_kafka:
        # a fresh cluster is handed over only once its coordinators answer: clients start without the
        # "coordinator load in progress" retries they log otherwise
        assert not [m for m in _first_producer_id_wait(extra_kafka.bootstrap) if "load in progress" in m]
        extra_admin = AdminClient({"bootstrap.servers": extra_kafka.bootstrap})
        group = f"fresh-{name}"
        described = extra_admin.describe_consumer_groups([group], request_timeout=5)[group]
        assert described.result(timeout=5).coordinator is not None
        assert extra_redis.url != redis_url and extra_kafka.bootstrap != kafka_bootstrap
        assert localstack.find("redis", name) == extra_redis
        assert localstack.find("kafka", name) == extra_kafka
        topic = f"extra-{name}"
        extra_admin.create_topics([NewTopic(topic, 2, 1)])[topic].result()
        wait_for_leaders(extra_admin, {topic: 2})
        _produce(extra_kafka.bootstrap, topic, [(b"k", b"v")])
        assert _read_assigned(extra_kafka.bootstrap, topic, partitions=2) == [b"v"]
    assert localstack.find("redis", name) is None and localstack.find("kafka", name) is None
    assert not extra_kafka.run_dir.exists() and not extra_redis.run_dir.exists()


def test_a_taken_port_is_a_clear_error_in_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(localstack.LocalStackError) as raised:
            localstack.start_redis(port)
    expected = f"redis did not start: redis-local: port {port} on 127.0.0.1 is already in use"
    assert str(raised.value) == expected


_CALLER = """
import signal, sys, time
import redis
from stream_ner import localstack
signal.signal(signal.SIGINT, signal.default_int_handler)  # as the demo does, whatever its parent ignores
service = localstack.start_redis()
try:  # "ready" inside: the signal may come as soon as it is read
    print("ready", flush=True)
    time.sleep(60)
except KeyboardInterrupt:
    time.sleep(1)  # long enough for a server that got the SIGINT too to have shut down
    try:
        print("alive" if redis.Redis.from_url(service.url, socket_timeout=2).ping() else "no answer")
    except redis.RedisError as exc:
        print(f"gone: {exc}")
    service.stop()
"""


def test_a_ctrl_c_for_the_caller_does_not_reach_the_servers_it_started():
    """A terminal's Ctrl-C signals the whole foreground process group; the demo must stop its servers after
    its own clients, so the servers it starts cannot be in that group."""
    caller = subprocess.Popen(
        [sys.executable, "-c", _CALLER], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert caller.stdout is not None
    assert caller.stdout.readline().strip() == "ready"
    os.killpg(caller.pid, signal.SIGINT)  # what Ctrl-C does to the caller's process group
    out, _ = caller.communicate(timeout=30)
    assert out.strip() == "alive"
    assert caller.returncode == 0
