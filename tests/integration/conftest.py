"""Real services for integration tests: one Kafka broker and one Redis per test run.

Both are started on free ports by ``stream_ner.localstack`` the first time a test asks for them and
stopped when the run ends. A missing Java/Maven/redis-server or a failed start-up FAILS the tests that
need them (``pytest.fail``), it never skips them. Every test under ``tests/integration/`` is marked
``integration``. Isolation: each test makes its own uniquely named topics (``make_topics``) and uses
its own Redis key prefix (``redis_prefix``, cleaned after the test).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from stream_ner import localstack
from stream_ner.topics import wait_for_leaders

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    for line in config.stash.get(_STARTUPS, []):
        terminalreporter.write_line(line)


_STARTUPS = pytest.StashKey[list[str]]()


def _start(
    config: pytest.Config, start: Callable[[], localstack.LocalService], what: str = ""
) -> localstack.LocalService:
    began = time.monotonic()
    what = what or start.__name__.removeprefix("start_")
    try:
        service = start()
    except localstack.LocalStackError as exc:
        failure = f"integration tests need a local {what}: {exc}"
    else:
        failure = ""
    if failure:  # raised outside the except block: the report shows the reason, no chained traceback
        pytest.fail(failure, pytrace=False)
    seconds = time.monotonic() - began
    config.stash.setdefault(_STARTUPS, []).append(
        f"local {what} at {service.bootstrap if service.kind == 'kafka' else service.address} ready in "
        f"{seconds:.2f} s (logs: {service.log})"
    )
    return service


@pytest.fixture
def report(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """``report(line)``: a line for the end of the run's summary (measured figures, where files went)."""
    return lambda line: pytestconfig.stash.setdefault(_STARTUPS, []).append(line)


@pytest.fixture(scope="session")
def kafka_service(pytestconfig: pytest.Config) -> Iterator[localstack.LocalService]:
    """The run's single-node Kafka broker on a free port."""
    service = _start(pytestconfig, localstack.start_kafka)
    yield service
    service.stop()


@pytest.fixture(scope="session")
def kafka_cluster(pytestconfig: pytest.Config) -> Iterator[localstack.LocalService]:
    """A three-node KRaft cluster on free ports, started by the first test that asks for it.

    Only fault tests use it (topics at replication factor 3, ``min.insync.replicas`` 2): three more JVMs.
    A test that stops a node starts it again before it ends, so the next test finds all three.
    """
    service = _start(pytestconfig, lambda: localstack.start_kafka(brokers=3), "kafka cluster of 3 brokers")
    yield service
    service.stop()


@pytest.fixture(scope="session")
def redis_service(pytestconfig: pytest.Config) -> Iterator[localstack.LocalService]:
    """The run's Redis server on a free port."""
    service = _start(pytestconfig, localstack.start_redis)
    yield service
    service.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_service: localstack.LocalService) -> str:
    """``bootstrap.servers`` of the run's broker, e.g. ``127.0.0.1:40123``."""
    return kafka_service.bootstrap


@pytest.fixture(scope="session")
def redis_url(redis_service: localstack.LocalService) -> str:
    """URL of the run's Redis, e.g. ``redis://127.0.0.1:40124/0``."""
    return redis_service.url


@pytest.fixture(scope="session")
def admin(kafka_bootstrap: str) -> AdminClient:
    """An AdminClient on the run's broker."""
    return AdminClient({"bootstrap.servers": kafka_bootstrap})


def unique_name(request: pytest.FixtureRequest, suffix: str = "") -> str:
    """A name no other test (or run) uses: test name, short, plus random hex."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40].strip("-")
    return f"{base}-{uuid.uuid4().hex[:8]}{suffix}"


@pytest.fixture
def make_topics(admin: AdminClient, request: pytest.FixtureRequest) -> Iterator[Callable[..., list[str]]]:
    """``make_topics(3, 1)`` creates one topic per partition count and returns their unique names.

    The call returns once every partition has a leader; the topics are deleted after the test.
    """
    created: list[str] = []

    def make(*partitions: int) -> list[str]:
        names = {unique_name(request, f".{i}"): count for i, count in enumerate(partitions or (1,))}
        new = [NewTopic(name, num_partitions=count, replication_factor=1) for name, count in names.items()]
        for future in admin.create_topics(new, operation_timeout=30).values():
            future.result()
        created.extend(names)
        wait_for_leaders(admin, names)
        return list(names)

    yield make
    if created:
        for future in admin.delete_topics(created, operation_timeout=30).values():
            try:
                future.result()
            except KafkaException:
                pass  # already gone: nothing to clean


@pytest.fixture
def topic_factory(make_topics: Callable[..., list[str]]) -> Callable[[int], str]:
    """``topic_factory(partitions)`` creates one unique topic and returns its name (see ``make_topics``)."""
    return lambda partitions=1: make_topics(partitions)[0]


@pytest.fixture
def redis_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix of this test's own, ending in ``:``."""
    return unique_name(request, ":")


@pytest.fixture
def redis_client(redis_url: str, redis_prefix: str) -> Iterator[redis.Redis]:
    """A client on the run's Redis; every key under ``redis_prefix`` is deleted after the test."""
    client = redis.Redis.from_url(redis_url)
    yield client
    keys = list(client.scan_iter(match=f"{redis_prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@dataclass(frozen=True)
class Record:
    """One consumed Kafka record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


def consume_all(bootstrap: str, topic: str, n: int, timeout: float = 30.0) -> list[Record]:
    """Read ``topic`` from the beginning until ``n`` records arrived or ``timeout`` seconds passed.

    Uses a fresh consumer group that commits nothing, so it never disturbs the groups under test.
    Returns what arrived (possibly fewer than ``n``: the caller asserts), in arrival order.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"consume-all-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    records: list[Record] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(records) < n and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=n - len(records), timeout=0.5):
                if message.error():
                    raise KafkaException(message.error())
                records.append(
                    Record(
                        topic=message.topic(),
                        partition=message.partition(),
                        offset=message.offset(),
                        key=message.key(),
                        value=message.value(),
                        headers=tuple(message.headers() or ()),
                    )
                )
    finally:
        consumer.close()
    return records


@pytest.fixture
def consume(kafka_bootstrap: str) -> Callable[..., list[Record]]:
    """``consume(topic, n, timeout=30.0)``: :func:`consume_all` on the run's broker."""
    return lambda topic, n, timeout=30.0: consume_all(kafka_bootstrap, topic, n, timeout)
