"""Run real ``stream-ner aggregate`` processes and check what they wrote against a recount.

Shared by the aggregator's integration tests and the chaos soak (``loadtest.chaos``): topic and group names,
the aggregator subprocess, a Redis with an append-only file that can be restarted on it, readers of
``brand-aggregates`` and of the Redis hashes, and ``recount``, an independent recount of the first event per
post on ``entities`` in the aggregator's output format.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import redis
from confluent_kafka.admin import AdminClient, NewTopic

from loadtest.readers import watcher
from stream_ner.brands.normalize import fold
from stream_ner.localstack import free_port
from stream_ner.messages import EntityEvent
from stream_ner.topics import wait_for_leaders
from stream_ner.worker.metrics import scrape

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


WINDOWS: list[dict[str, Any]] = [
    {"name": "1m", "size_s": 60, "step_s": 60},
    {"name": "5m", "size_s": 300, "step_s": 60},
]


@dataclass
class Names:
    entities: str
    aggregates: str
    app_id: str
    prefix: str

    @classmethod
    def fresh(cls, test: str) -> Names:
        tag = f"{test.replace('_', '-')[:30]}-{uuid.uuid4().hex[:8]}"
        return cls(f"{tag}.entities", f"{tag}.aggregates", f"{tag}-agg", f"t-{tag}")


def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
    for future in admin.create_topics(new).values():
        future.result(30)
    wait_for_leaders(admin, names)


@dataclass
class Aggregator:
    """One ``stream-ner aggregate`` subprocess."""

    proc: subprocess.Popen
    metrics_port: int
    log_path: Path

    def metrics(self) -> dict[str, float]:
        return defaultdict(float, scrape(self.metrics_port))

    def metric(self, name: str) -> float:
        try:
            return self.metrics().get(name, 0.0)
        except OSError:
            return 0.0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def alive(self) -> None:
        assert self.proc.poll() is None, f"aggregator exited with {self.proc.returncode}:\n{self.log()}"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def start_aggregator(
    bootstrap: str,
    redis_url: str,
    names: Names,
    log_path: Path,
    env_extra: dict[str, str] | None = None,
    **settings: str,
) -> Aggregator:
    """``stream-ner aggregate`` on ``names``, stdout and stderr to ``log_path``.

    ``settings`` are aggregate settings (``flush_interval_ms="100"``), ``env_extra`` any other variables.
    """
    port = free_port()
    env = (
        os.environ
        | {
            "STREAM_NER_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "STREAM_NER_TOPICS__ENTITIES": names.entities,
            "STREAM_NER_TOPICS__BRAND_AGGREGATES": names.aggregates,
            "STREAM_NER_REDIS__URL": redis_url,
            "STREAM_NER_REDIS__KEY_PREFIX": names.prefix,
            "STREAM_NER_AGGREGATE__APP_ID": names.app_id,
            "STREAM_NER_AGGREGATE__REPLICATION_FACTOR": "1",
            "STREAM_NER_AGGREGATE__PARTITIONS": "3",
            "STREAM_NER_AGGREGATE__FLUSH_INTERVAL_MS": "200",
            "STREAM_NER_AGGREGATE__METRICS_PORT": str(port),
            "STREAM_NER_AGGREGATE__WINDOWS": json.dumps(WINDOWS),
        }
        | {f"STREAM_NER_AGGREGATE__{k.upper()}": v for k, v in settings.items()}
        | (env_extra or {})
    )
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream_ner", "aggregate"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return Aggregator(proc, port, log_path)


GAP_LINE = "records missed or out of order"
"""What an aggregator logs on an input record read after a gap in its partition's offsets (an ``entities``
record, ``dedupe``; a by-brand record, ``panes`` rule 1)."""


def gap_lines(log_path: Path) -> list[str]:
    """The lines of an aggregator's log that report an input read after a gap (``GAP_LINE``)."""
    return [line for line in log_path.read_text(errors="replace").splitlines() if GAP_LINE in line]


def window_starts(at_s: float, size_s: int, step_s: int) -> list[int]:
    last = int(at_s // step_s) * step_s
    return [s for s in range(last - size_s + step_s, last + 1, step_s)]


def iso(start_s: int) -> str:
    return (T0 + timedelta(seconds=start_s)).strftime("%Y-%m-%dT%H:%M:%SZ")


def observed(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "mentions": record["mentions"],
        "posts": record["posts"],
        "authors": record["authors"],
        "sentiment_sum": round(record["sentiment_sum"], 6),
        "tones": [record["negative"], record["neutral"], record["positive"]],
        "co_brands": {c["id"]: c["count"] for c in record["co_brands"]},
        "co_entities": {c["id"]: c["count"] for c in record["co_entities"]},
    }


class TopicReader:
    """Keeps the latest record per key of the output topic."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = watcher(bootstrap, "reader")
        self.consumer.subscribe([topic])
        self.latest: dict[str, dict[str, Any]] = {}
        self.count = 0

    def poll(self, seconds: float = 1.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            message = self.consumer.poll(0.2)
            if message is None or message.error():
                continue
            self.latest[cast(bytes, message.key()).decode()] = json.loads(cast(bytes, message.value()))
            self.count += 1

    def close(self) -> None:
        self.consumer.close()


def redis_state(client: redis.Redis, prefix: str) -> dict[str, dict[str, Any]]:
    state = {}
    for raw in client.scan_iter(match=f"{prefix}:agg:*", count=1000):
        record = json.loads(cast(bytes, client.hget(raw, "record")))
        state[f"{record['brand']}|{record['window']}|{record['window_start'].replace('+00:00', 'Z')}"] = (
            record
        )
    return state


def normalise_keys(records: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {k: observed(v) for k, v in records.items()}


def wait_exact(
    reader: TopicReader,
    client: redis.Redis,
    prefix: str,
    expected: dict[str, dict[str, Any]],
    aggregator: Aggregator,
    timeout: float = 120.0,
) -> None:
    """Poll topic and Redis until both equal ``expected``; fail with the difference otherwise."""
    deadline = time.monotonic() + timeout
    topic_state = redis_now = None
    while time.monotonic() < deadline:
        aggregator.alive()
        reader.poll(1.0)
        topic_state = normalise_keys(reader.latest)
        try:
            redis_now = normalise_keys(redis_state(client, prefix))
        except redis.ConnectionError:
            redis_now = None
        if topic_state == expected and redis_now == expected:
            return
    diff_topic = {
        k: (expected.get(k), (topic_state or {}).get(k)) for k in set(expected) | set(topic_state or {})
    }
    diff_topic = {k: v for k, v in diff_topic.items() if v[0] != v[1]}
    diff_redis = {
        k: (expected.get(k), (redis_now or {}).get(k)) for k in set(expected) | set(redis_now or {})
    }
    diff_redis = {k: v for k, v in diff_redis.items() if v[0] != v[1]}
    raise AssertionError(
        f"not exact after {timeout}s\ntopic diff ({len(diff_topic)}): {list(diff_topic.items())[:5]}\n"
        f"redis diff ({len(diff_redis)}): {list(diff_redis.items())[:5]}\n{aggregator.log()}"
    )


class PersistentRedis:
    """A ``redis-server`` with an append-only file (fsync always) in ``data``: a restart loses nothing.

    ``timeout_s`` bounds both the wait for its first PING after a start and for its exit after a stop.
    """

    def __init__(self, data: Path, timeout_s: float = 20.0) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server is required (deploy/local/install-deps.sh)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.timeout_s = timeout_s
        data.mkdir(parents=True, exist_ok=True)
        self.command = [server, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(data)]
        self.command += ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait for PING."""
        self.proc = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        for _ in range(round(self.timeout_s / 0.1)):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server did not answer PING in {self.timeout_s:g} s")

    def stop(self) -> None:
        """SIGTERM (Redis writes its append-only file and exits) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(self.timeout_s)


def recount(events: list[EntityEvent], top_n: int = 10) -> dict[str, dict[str, Any]]:
    """Counts per brand and window from the first event of every post, written apart from the stage."""
    acc: dict[str, dict[str, Any]] = {}
    for event in events:
        brands = sorted(set(event.brands) | {e.brand for e in event.entities if e.brand})
        others = {f"{e.label}:{fold(e.text).strip()}" for e in event.entities if not e.brand}
        at_s = (cast(datetime, event.created_at) - T0).total_seconds()
        post_tone = (event.sentiment_label, event.sentiment)  # what a mention without its own counts
        for brand in brands:
            for spec in WINDOWS:
                for start in window_starts(at_s, spec["size_s"], spec["step_s"]):
                    a = acc.setdefault(
                        f"{brand}|{spec['name']}|{iso(start)}",
                        {"mentions": 0, "posts": 0, "authors": set(), "s": 0.0, "tones": Counter(),
                         "co": defaultdict(int), "ent": defaultdict(int)},
                    )  # fmt: skip
                    a["mentions"] += max(1, sum(1 for e in event.entities if e.brand == brand))
                    a["posts"] += 1
                    if event.author:
                        a["authors"].add(event.author)
                    linked = [e for e in event.entities if e.brand == brand]
                    for label, score in [
                        (e.sentiment_label, e.sentiment) if e.sentiment_label else post_tone for e in linked
                    ] or [post_tone]:
                        if label is not None:
                            a["s"] += score
                            a["tones"][label] += 1
                    for other in brands:
                        if other != brand:
                            a["co"][other] += 1
                    for other in others:
                        a["ent"][other] += 1

    def top(counts: dict[str, int]) -> dict[str, int]:
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_n])

    return {
        key: {
            "mentions": a["mentions"],
            "posts": a["posts"],
            "authors": len(a["authors"]),
            "sentiment_sum": round(a["s"], 6),
            "tones": [a["tones"]["negative"], a["tones"]["neutral"], a["tones"]["positive"]],
            "co_brands": top(a["co"]),
            "co_entities": top(a["ent"]),
        }
        for key, a in acc.items()
    }
