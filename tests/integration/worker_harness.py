"""Run real ``stream-ner worker`` processes against the test broker and read what they produced."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from stream_ner.localstack import free_port
from stream_ner.settings import Settings, TopicSettings
from stream_ner.topics import apply, load_specs
from stream_ner.worker.metrics import scrape


@dataclass
class Topics:
    raw: str
    entities: str
    dlq: str
    aggregates: str
    group: str

    @classmethod
    def fresh(cls, prefix: str) -> Topics:
        tag = f"{prefix}-{uuid.uuid4().hex[:8]}"
        return cls(f"{tag}.raw", f"{tag}.entities", f"{tag}.dlq", f"{tag}.aggregates", f"{tag}.workers")

    def apply(self, bootstrap: str, replication_factor: int | None = 1) -> dict[str, int]:
        """Create the topics from the project's specs; partitions by setting name.

        ``replication_factor``: 1 for the single test broker; ``None`` keeps the specs' (3, with
        ``min.insync.replicas`` 2) for the three-broker cluster.
        """
        settings = Settings(
            topics=TopicSettings(
                raw_posts=self.raw,
                entities=self.entities,
                dlq=self.dlq,
                brand_aggregates=self.aggregates,
                brand_alerts=self.raw.removesuffix(".raw") + ".alerts",
                replication_factor=replication_factor,
            )
        )
        specs = load_specs(settings)
        apply(AdminClient({"bootstrap.servers": bootstrap}), specs)
        return {spec.setting: spec.partitions for spec in specs}


@dataclass
class WorkerProcess:
    """One worker subprocess with its metrics port and log file."""

    proc: subprocess.Popen
    metrics_port: int
    log_path: Path
    rss_samples: list[int] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """Scrape /metrics into {name{labels}: value}."""
        return scrape(self.metrics_port)

    def wait_assigned(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.metrics().get("stream_ner_assigned_partitions", 0) > 0:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"worker got no partitions in {timeout}s:\n{self.log()}")

    def sample_rss(self) -> int:
        rss = psutil.Process(self.proc.pid).memory_info().rss
        self.rss_samples.append(rss)
        return rss

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def terminate(self, timeout: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def start_worker(
    bootstrap: str,
    topics: Topics,
    log_dir: Path,
    name: str,
    python_flags: tuple[str, ...] = (),
    **worker_env: str,
) -> WorkerProcess:
    port = free_port()
    env = (
        os.environ
        | {
            "STREAM_NER_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "STREAM_NER_TOPICS__RAW_POSTS": topics.raw,
            "STREAM_NER_TOPICS__ENTITIES": topics.entities,
            "STREAM_NER_TOPICS__DLQ": topics.dlq,
            "STREAM_NER_WORKER__GROUP_ID": topics.group,
            "STREAM_NER_WORKER__METRICS_PORT": str(port),
            "STREAM_NER_MODEL__INTRA_OP_THREADS": "1",
            "STREAM_NER_LOG_LEVEL": "INFO",
        }
        | {f"STREAM_NER_WORKER__{k.upper()}": v for k, v in worker_env.items()}
    )
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [sys.executable, *python_flags, "-m", "stream_ner", "worker", "--name", name],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return WorkerProcess(proc, port, log_path)


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]]) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.max.bytes": 2**21,
        }
    )
    errors: list[str] = []
    for key, value in records:
        producer.produce(
            topic, value=value, key=key, on_delivery=lambda e, m: errors.append(str(e)) if e else None
        )
        producer.poll(0)
    assert producer.flush(30) == 0
    assert not errors, errors


def post(i: int, text: str | None = None, **extra) -> tuple[bytes, bytes]:
    pid = f"post-{i:05d}"
    body = {
        "id": pid,
        "text": text or f"Post {i}: loving the new Nike shoes I bought in London #{i}",
        **extra,
    }
    return pid.encode(), json.dumps(body).encode()


def read_all(
    bootstrap: str, topic: str, expect: int, timeout: float = 120.0, idle: float = 0.0
) -> list[dict]:
    """Read ``topic`` from the start until ``expect`` records arrived (then ``idle`` more quiet seconds)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    records: list[dict] = []
    deadline = time.monotonic() + timeout
    quiet_until = None
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                if quiet_until is not None and time.monotonic() >= quiet_until:
                    break
                continue
            records.append(json.loads(message.value()))
            if len(records) >= expect and quiet_until is None:
                if not idle:
                    break
                quiet_until = time.monotonic() + idle
    finally:
        consumer.close()
    return records


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (-1001 where none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in tps}
