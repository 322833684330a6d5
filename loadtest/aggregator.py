"""The aggregator's own throughput: entity events written to ``entities``, drained by ``stream-ner
aggregate`` processes into ``brand-aggregates`` and Redis.

Each run starts its processes on fresh topics, a fresh consumer group and a fresh Redis prefix, waits
until they share the partitions, then writes the events as fast as the broker takes them (the baseline,
which cannot tell when it holds its partitions, finds them already written). It measures from the first
event read to the moment the 1-minute windows in Redis hold one post per brand mention generated (posts
in, brand aggregates in Redis out): events/s and mentions/s over that span, and the CPU time and peak RSS
of each process. Three seconds later they must still hold exactly that (``exact``). Runs:

- ``baseline``: the aggregator of an earlier commit (``BASELINE_REF``, run from a git worktree), one
  process, default windows, on fewer events (it is slow);
- ``1 process`` and ``2 processes`` with the default windows (1 m tumbling, 1 h hopping by 5 m), and
  ``1 process, 1m only``: twice each, interleaved, then one process a third time; the figures are medians.

The events: catalog brands drawn with Zipf weights, 1 to 3 per post (about 1.7 mentions per event),
authors from a pool of 2,000, event times advancing 100 posts per second with up to 10 s of disorder.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from loadtest.schema import AggregateFigures, AggregateRun
from stream_ner.localstack import free_port
from stream_ner.topics import wait_for_leaders
from stream_ner.worker.metrics import scrape

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ONE_MINUTE = [{"name": "1m", "size_s": 60, "step_s": 60}]
PARTITIONS = 6


@dataclass(frozen=True)
class Plan:
    """One run to make."""

    label: str
    processes: int
    windows: list[dict[str, object]] | None  # None: the defaults
    events: int
    baseline: bool = False


def generate(n: int, seed: int = 7) -> tuple[list[tuple[bytes, bytes]], int]:
    """``n`` entity events as (key, value) and the number of brand mentions they hold."""
    from stream_ner.brands.catalog import load_catalog

    rng = random.Random(seed)
    brands = sorted(load_catalog().brands)
    weights = [1 / (rank + 1) for rank in range(len(brands))]
    authors = [f"user{i}" for i in range(2000)]
    events, mentions = [], 0
    for i in range(n):
        chosen = sorted(set(rng.choices(brands, weights, k=rng.choice([1, 1, 2, 2, 3]))))
        mentions += len(chosen)
        at = T0 + timedelta(seconds=i / 100 + rng.uniform(-10, 0))
        entities = [
            {"start": 0, "end": len(b), "label": "ORG", "score": 0.9, "text": b, "brand": b} for b in chosen
        ]
        if rng.random() < 0.4:
            entities.append(
                {"start": 0, "end": 5, "label": "PER", "score": 0.9, "text": "Taylor", "brand": None}
            )
        value = {
            "post_id": f"post-{i}",
            "text": " ".join(chosen),
            "entities": entities,
            "brands": chosen,
            "created_at": at.isoformat(),
            "author": rng.choice(authors),
            "lang": "en",
            "source": "loadtest",
            "metadata": {},
            "sentiment": rng.choice([None, -0.5, 0.5]),
            "model": {"name": "loadtest", "version": "1"},
            "origin": {"topic": "raw-posts", "partition": 0, "offset": i, "timestamp_ms": None},
            "processed_at": datetime.now(UTC).isoformat(),
        }
        events.append((f"post-{i}".encode(), json.dumps(value).encode()))
    return events, mentions


def create_topics(bootstrap: str, topic: str) -> None:
    """Create ``topic`` and its output twin."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [topic, f"{topic}.aggregates"]
    for future in admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in names]).values():
        future.result(30)
    wait_for_leaders(admin, names)


def preload(bootstrap: str, topic: str, events: list[tuple[bytes, bytes]]) -> None:
    """Write the events to ``topic`` as fast as the broker takes them."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4"})
    for key, value in events:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(60) == 0, "could not pre-load the entity events"


def worktree(ref: str) -> Path:
    """A checkout of ``ref`` to run an earlier aggregator from."""
    path = Path(tempfile.mkdtemp(prefix="stream-ner-baseline-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(path), ref], check=True, capture_output=True)
    return path


def drain(
    bootstrap: str,
    redis_url: str,
    plan: Plan,
    events: list[tuple[bytes, bytes]],
    expected_mentions: int,
    code: Path | None,
) -> AggregateRun:
    """Start the plan's processes, write the events, wait until everything is counted and in Redis."""
    from loadtest import machine

    load = machine.load()
    import psutil

    tag = f"agg-{plan.label.replace(' ', '-').replace(',', '')}-{uuid.uuid4().hex[:6]}"
    topic = f"{tag}.entities"
    create_topics(bootstrap, topic)
    if plan.baseline:
        preload(bootstrap, topic, events)
    ports = [free_port() for _ in range(plan.processes)]
    env = os.environ | {
        "STREAM_NER_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "STREAM_NER_TOPICS__ENTITIES": topic,
        "STREAM_NER_TOPICS__BRAND_AGGREGATES": f"{topic}.aggregates",
        "STREAM_NER_REDIS__URL": redis_url,
        "STREAM_NER_REDIS__KEY_PREFIX": tag,
        "STREAM_NER_AGGREGATE__APP_ID": tag,
        "STREAM_NER_AGGREGATE__REPLICATION_FACTOR": "1",
    }
    if plan.windows is not None:
        env["STREAM_NER_AGGREGATE__WINDOWS"] = json.dumps(plan.windows)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    logs = Path(tempfile.mkdtemp(prefix="stream-ner-agg-"))
    procs = []
    for i, port in enumerate(ports):
        with (logs / f"agg{i}.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "stream_ner", "aggregate"],
                    env=env | {"STREAM_NER_AGGREGATE__METRICS_PORT": str(port)},
                    cwd=code or Path.cwd(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    handles = [psutil.Process(p.pid) for p in procs]
    if not plan.baseline:
        _wait_assigned(procs, ports, logs)  # every process holds its share before the events arrive
        preload(bootstrap, topic, events)
    peak = [0.0] * len(procs)
    began = cpu0 = None
    deadline = time.monotonic() + 600
    try:
        while True:
            for i, (proc, handle) in enumerate(zip(procs, handles, strict=True)):
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"aggregator {i} exited:\n{(logs / f'agg{i}.log').read_text()[-3000:]}"
                    )
                peak[i] = max(peak[i], handle.memory_info().rss / 2**20)
            metrics = [_metrics(port) for port in ports]
            read = sum(m.get("stream_ner_aggregate_events_total", 0.0) for m in metrics)
            if began is None and read > 0:
                began, cpu0 = time.monotonic(), [_cpu_s(h) for h in handles]
            counted = sum(
                m.get('stream_ner_aggregate_mentions_total{result="counted"}', 0.0) for m in metrics
            )
            if (
                began is not None
                and counted >= expected_mentions
                and _posts_in_redis(redis_url, tag) >= expected_mentions
            ):
                ended = time.monotonic()  # every mention counted and in Redis: the drain is over
                cpu1 = [_cpu_s(h) for h in handles]
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{plan.label}: {counted:.0f} of {expected_mentions} mentions after 600 s")
            time.sleep(0.2)
        written = sum(m.get('stream_ner_aggregate_records_written_total{sink="redis"}', 0.0) for m in metrics)
        time.sleep(3)  # nothing may change after the drain: no late write, no double count
        posts = _posts_in_redis(redis_url, tag)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    span = max(ended - began, 1e-3)
    return AggregateRun(
        label=plan.label,
        code="baseline" if plan.baseline else "current",
        processes=plan.processes,
        windows="1m" if plan.windows == ONE_MINUTE else "1m + 1h/5m",
        events=len(events),
        mentions=expected_mentions,
        drain_s=round(span, 2),
        events_per_s=round(len(events) / span, 1),
        mentions_per_s=round(expected_mentions / span, 1),
        cpu_pct=[round(100 * (c1 - c0) / span, 1) for c0, c1 in zip(cpu0 or [], cpu1, strict=True)],
        rss_mb=[round(p, 1) for p in peak],
        exact=posts == expected_mentions,
        load_before=load,
        records_written=written,
    )


def _wait_assigned(procs: list[subprocess.Popen[bytes]], ports: list[int], logs: Path) -> None:
    """Until every process holds partitions of both stages and together they hold all of ``entities``."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for i, proc in enumerate(procs):
            if proc.poll() is not None:
                raise RuntimeError(f"aggregator {i} exited:\n{(logs / f'agg{i}.log').read_text()[-3000:]}")
        held = [_metrics(port) for port in ports]
        rekey = [m.get('stream_ner_aggregate_assigned_partitions{stage="rekey"}', 0.0) for m in held]
        windows = [m.get('stream_ner_aggregate_assigned_partitions{stage="windows"}', 0.0) for m in held]
        if all(rekey) and all(windows) and sum(rekey) == PARTITIONS:
            return
        time.sleep(0.5)
    raise RuntimeError("the aggregator processes did not share the partitions within 180 s")


def _posts_in_redis(url: str, prefix: str) -> int:
    """Posts counted in the 1-minute windows in Redis: one per brand mention once the drain is over."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:agg:1m:*", count=1000))
        if not keys:
            return 0
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hget(key, "posts")
        return sum(int(v or 0) for v in pipe.execute())
    finally:
        client.close()


def _metrics(port: int) -> dict[str, float]:
    try:
        return scrape(port, timeout=2.0)
    except OSError:
        return {}


def _cpu_s(handle: object) -> float:
    times = handle.cpu_times()  # type: ignore[attr-defined]
    return float(times.user + times.system)


def plans(events: int, baseline_events: int, baseline: bool) -> list[Plan]:
    """The runs of the scenario: the baseline, then two rounds of the three layouts, one process last."""
    found = [Plan("baseline", 1, None, baseline_events, baseline=True)] if baseline else []
    for _ in range(2):
        found += [
            Plan("1 process", 1, None, events),
            Plan("2 processes", 2, None, events),
            Plan("1 process, 1m only", 1, ONE_MINUTE, events),
        ]
    return found + [Plan("1 process", 1, None, events)]


BASELINE_REF = "0bb006a"
"""The last commit whose aggregator applied one mention at a time to every window (before panes)."""


def measure(
    bootstrap: str, quick: bool, baseline_ref: str | None = BASELINE_REF
) -> tuple[AggregateFigures, list[str]]:
    """Every plan on one broker and one Redis, each on its own pre-loaded topic; figures and log lines."""
    from rich.console import Console

    from stream_ner import localstack

    events, baseline_events = (3_000, 500) if quick else (30_000, 1_500)
    console = Console(stderr=True)
    redis_service = localstack.start_redis()
    code = worktree(baseline_ref) if baseline_ref else None
    runs: list[AggregateRun] = []
    lines = []
    try:
        generated, _ = generate(max(events, baseline_events))
        for plan in plans(events, baseline_events, code is not None):
            chosen = generated[: plan.events]
            mentions = sum(len(json.loads(v)["brands"]) for _, v in chosen)
            with console.status(f"{plan.label}: {plan.events} events ({mentions} mentions), draining"):
                run = drain(
                    bootstrap, redis_service.url, plan, chosen, mentions, code if plan.baseline else None
                )
            line = (
                f"{plan.label}: {run['events_per_s']:.0f} events/s, {run['mentions_per_s']:.0f} mentions/s, "
                f"CPU {run['cpu_pct']} %, RSS {run['rss_mb']} MB, exact={run['exact']}"
            )
            console.log(line)
            lines.append(line)
            runs.append(run)
    finally:
        redis_service.stop()
        if code is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(code)], capture_output=True)
    one = statistics.median(r["events_per_s"] for r in runs if r["label"] == "1 process")
    two = statistics.median(r["events_per_s"] for r in runs if r["label"] == "2 processes")
    base = next((r["events_per_s"] for r in runs if r["code"] == "baseline"), None)
    figures = AggregateFigures(
        baseline_ref=baseline_ref,
        runs=runs,
        one_process_events_per_s=one,
        speedup_vs_baseline=round(one / base, 1) if base else None,
        two_vs_one=round(two / one, 2),
    )
    return figures, lines
