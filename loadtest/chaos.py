"""Chaos soak: posts at a fixed rate through the whole pipeline on three brokers while its parts are killed.

One run (:func:`run`): topics from the project's specs (replication factor 3, ``min.insync.replicas`` 2)
on a three-node local cluster, two static-member workers, the aggregator (internal topics at replication
factor 3) writing to a Redis with an append-only file, and posts at ``rate`` per second, spread by key
over every input partition, with event times ``1 / rate`` apart. Faults follow a :func:`plan`, one at a
time: ``kill -9`` of a worker (started again at once under its name), of the aggregator (started again at
once), of one broker (started again on its data after ``BROKER_DOWN_S``), and a Redis restart (SIGTERM,
started again on its append-only file after ``REDIS_DOWN_S``).

A fault's **recovery time** runs from its injection until the pipeline is back in steady state, sampled
every 0.5 s: posts acknowledged but without an event on ``entities`` at most ``2 s`` of posts, the
aggregator's committed lag at most ``4 s`` of posts, and per kind: the restarted worker holds partitions,
the restarted aggregator counted a new mention, the broker is back in every in-sync replica set, Redis
took an aggregator write and none is pending. A fault not recovered within ``RECOVERY_TIMEOUT_S`` fails
the run; the next fault waits for the previous one's recovery. Posts go on for ``seconds``, and at least
``TAIL_S`` after the last fault recovered, so that every fault meets a stream.

Checks at the end (each pass/fail with its detail): every post acknowledged by the brokers; every post id
has an event on ``entities``; ``brand-aggregates`` and Redis equal a recount of ``entities`` (first event
per post id wins; ``loadtest.aggregate_check.recount``); the aggregator never read an input record
after a gap in its partition's offsets (it logs each); the committed lag of the workers' and the
aggregator's groups back to zero; no process exited by itself; every fault recovered.

    python -m loadtest.chaos                       # 10 minutes at half the max rate (results/maxrate.json)
    python -m loadtest.chaos --minutes 3 --rate 40 --write   # results/chaos.json and RESULTS.md's section
    python -m loadtest.chaos --minutes 1.8 --rate 20 --schedule worker,aggregator,broker  # in this order
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from loadtest.aggregate_check import (
    T0,
    Aggregator,
    Names,
    PersistentRedis,
    TopicReader,
    gap_lines,
    recount,
    start_aggregator,
    wait_exact,
)
from loadtest.corpus import load_corpus, stream
from loadtest.readers import watcher
from loadtest.report import write_standalone
from loadtest.schema import ChaosCheck, ChaosDoc, ChaosFault
from loadtest.stack import Topics, WorkerConfig, WorkerPool
from stream_ner.localstack import LocalService
from stream_ner.messages import EntityEvent
from stream_ner.settings import Settings, TopicSettings
from stream_ner.topics import apply, load_specs

HERE = Path(__file__).resolve().parent
KINDS = ("worker", "aggregator", "broker", "redis")
WORKERS = ("w1", "w2")
BROKER_DOWN_S = 5.0
REDIS_DOWN_S = 3.0
RECOVERY_TIMEOUT_S = 120.0
TAIL_S = 10.0
log = logging.getLogger(__name__)
COUNTED = 'stream_ner_aggregate_mentions_total{result="counted"}'
REDIS_PENDING = 'stream_ner_aggregate_pending_keys{sink="redis"}'
REDIS_WRITES = 'stream_ner_aggregate_records_written_total{sink="redis"}'
SHORT = (("worker", 5.0), ("aggregator", 15.0), ("broker", 30.0), ("redis", 45.0))
"""The integration test's schedule: each kind once, (kind, seconds into the stream)."""


@dataclass(frozen=True)
class Planned:
    """A fault to inject ``at_s`` seconds into the stream (or once the previous one recovered)."""

    kind: str
    at_s: float


def plan(seconds: float, faults: int, seed: int) -> list[Planned]:
    """``faults`` faults spread over the stream's first ``seconds - 30``, jittered: one broker kill, one
    Redis restart, the rest worker and aggregator kills (2 : 1), in random order."""
    rng = random.Random(seed)
    kinds = ["broker", "redis"] + rng.choices(["worker", "aggregator"], [2, 1], k=max(0, faults - 2))
    rng.shuffle(kinds)
    step = max(1.0, (seconds - 30.0) / max(1, faults))
    return [Planned(k, round(5.0 + i * step + rng.uniform(0, step / 3), 1)) for i, k in enumerate(kinds)]


class PostStream(threading.Thread):
    """Posts at ``rate`` per second (acks=all, idempotent) until :attr:`halt` is set, ids ``c0000000``...;
    event times ``1 / rate`` apart from ``T0``. ``sent`` posts were produced, ``acked`` acknowledged;
    ``errors`` holds delivery errors."""

    def __init__(self, bootstrap: str, topic: str, rate: float, texts: Iterator[str]) -> None:
        super().__init__(daemon=True)
        self.topic, self.rate, self.texts = topic, rate, texts
        self.producer = Producer(
            {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5}
        )
        self.sent = self.acked = 0
        self.errors: list[str] = []
        self.began = time.monotonic()
        self.halt = threading.Event()  # set: send no more posts

    def elapsed(self) -> float:
        """Seconds since the stream began."""
        return time.monotonic() - self.began

    def run(self) -> None:
        self.began = time.monotonic()
        i = 0
        while not self.halt.is_set():
            time.sleep(max(0.0, self.began + i / self.rate - time.monotonic()))
            created = (T0 + timedelta(seconds=i / self.rate)).isoformat()
            body = {
                "id": f"c{i:07d}",
                "text": next(self.texts),
                "created_at": created,
                "author": f"u{i % 997}",
            }
            self.producer.produce(self.topic, json.dumps(body).encode(), body["id"], on_delivery=self._ack)
            self.producer.poll(0)
            self.sent += 1
            i += 1
        left = self.producer.flush(120)
        if left:
            self.errors.append(f"{left} posts not acknowledged 120 s after the last")

    def _ack(self, error: object, _message: object) -> None:
        if error:
            self.errors.append(str(error))
        else:
            self.acked += 1


class EventTail(threading.Thread):
    """Reads ``entities`` from the beginning: the first event per post id (lowest offset) and the total."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.consumer = watcher(bootstrap, "chaos-tail")
        self.consumer.subscribe([topic])
        self.first: dict[str, bytes] = {}
        self.total = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for message in self.consumer.consume(500, 0.2):
                if message.error() or message.value() is None:
                    continue
                self.first.setdefault((message.key() or b"").decode(), message.value())  # type: ignore[arg-type]
                self.total += 1

    def stop(self) -> None:
        self.done.set()
        self.join(10)
        self.consumer.close()


def group_lag(bootstrap: str, group: str, topics: list[str]) -> int:
    """Records not yet committed by ``group`` on ``topics`` and on any other topic it has committed on."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    [future] = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)]).values()
    committed = {(tp.topic, tp.partition): tp.offset for tp in future.result(10).topic_partitions or []}
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"chaos-lag-{uuid.uuid4().hex[:8]}"})
    try:
        names = set(topics) | {topic for topic, _ in committed}
        metadata = probe.list_topics(timeout=10).topics
        lag = 0
        for name in names:
            for partition in metadata[name].partitions if name in metadata else {}:
                low, high = probe.get_watermark_offsets(TopicPartition(name, partition), 10, cached=False)
                offset = committed.get((name, partition), -1)
                lag += high - (offset if offset >= 0 else low)
        return lag
    finally:
        probe.close()


def in_sync(bootstrap: str, topics: list[str]) -> list[list[int]]:
    """The in-sync replicas of every partition of ``topics``."""
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
    return [list(m.isrs) for t in topics for m in metadata[t].partitions.values()]


@dataclass
class Pipeline:
    """The processes under test and the names they use; :meth:`close` stops them."""

    cluster: LocalService
    redis: PersistentRedis
    names: Names
    topics: Topics
    log_dir: Path
    rate: float
    workers: WorkerPool = field(init=False)
    aggregator: Aggregator = field(init=False)
    aggregator_starts: int = 0

    def __post_init__(self) -> None:
        settings = Settings(
            topics=TopicSettings(
                raw_posts=self.topics.raw,
                entities=self.topics.entities,
                dlq=self.topics.dlq,
                brand_aggregates=self.names.aggregates,
                brand_alerts=f"{self.names.app_id}.alerts",
                replication_factor=None,
            )
        )
        apply(AdminClient({"bootstrap.servers": self.cluster.bootstrap}), load_specs(settings))
        config = WorkerConfig(intra_op_threads=1)
        self.workers = WorkerPool(
            self.cluster.bootstrap, self.topics, config, count=len(WORKERS), static=True, log_dir=self.log_dir
        )

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap

    def start(self) -> None:
        """Workers sharing every input partition, and the aggregator serving metrics."""
        self.workers.start()
        self.start_aggregator()
        deadline = time.monotonic() + 120
        while not serving(self.aggregator):
            self.aggregator.alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the aggregator did not start:\n{self.aggregator.log()}")
            time.sleep(0.5)

    def start_aggregator(self) -> None:
        self.aggregator_starts += 1
        self.aggregator = start_aggregator(
            self.bootstrap,
            self.redis.url,
            self.names,
            self.log_dir / "aggregate.log",
            replication_factor="3",
            grace_s="600",  # nothing is late here: exactness only
        )

    def check_alive(self) -> None:
        """Raise when a worker or the aggregator exited by itself."""
        self.workers.check_alive()
        self.aggregator.alive()

    def close(self) -> None:
        self.workers.stop()
        self.aggregator.stop()


def serving(aggregator: Aggregator) -> bool:
    """Whether the aggregator answers on its metrics port."""
    try:
        aggregator.metrics()
    except OSError:
        return False
    return True


@dataclass
class Injector:
    """Injects one fault at a time and times the pipeline's recovery."""

    pipeline: Pipeline
    stream: PostStream
    tail: EventTail
    rng: random.Random

    def inject(self, kind: str) -> tuple[str, Callable[[], bool]]:
        """Inject ``kind``; returns its target and the kind's own recovery condition."""
        p = self.pipeline
        if kind == "worker":
            name = self.rng.choice(WORKERS)
            p.workers.kill(name)
            worker = p.workers.respawn(name)
            return name, lambda: _assigned(worker.metrics_port)
        if kind == "aggregator":
            p.aggregator.kill()
            p.start_aggregator()
            return "aggregator", lambda: p.aggregator.metric(COUNTED) > 0
        if kind == "broker":
            node = self.rng.choice([1, 2, 3])
            p.cluster.stop_node(node, kill=True)
            time.sleep(BROKER_DOWN_S)
            p.cluster.start_node(node)
            topics = [p.topics.raw, p.topics.entities, p.names.aggregates]
            return f"broker {node}", lambda: all(node in isr for isr in in_sync(p.bootstrap, topics))
        if kind == "redis":
            p.redis.stop()
            time.sleep(REDIS_DOWN_S)
            before = p.aggregator.metric(REDIS_WRITES)
            p.redis.start()
            return (
                "redis",
                lambda: p.aggregator.metric(REDIS_WRITES) > before and not p.aggregator.metric(REDIS_PENDING),
            )
        raise ValueError(f"unknown fault kind {kind!r}; one of {KINDS}")

    def steady(self) -> bool:
        """Backlog of posts without an event at most 2 s of posts, aggregator lag at most 4 s of posts."""
        p = self.pipeline
        backlog = self.stream.acked - len(self.tail.first)
        if backlog > max(10.0, 2 * p.rate):
            return False
        return group_lag(p.bootstrap, p.names.app_id, [p.topics.entities]) <= max(20.0, 4 * p.rate)

    def recover(self, own: Callable[[], bool], since: float) -> float | None:
        """Seconds from ``since`` until ``own()`` and :meth:`steady` both hold; None after the timeout."""
        own_done = False
        while time.monotonic() - since < RECOVERY_TIMEOUT_S:
            self.pipeline.check_alive()
            try:
                own_done = own_done or own()
                if own_done and self.steady():
                    return round(time.monotonic() - since, 1)
            except Exception:  # a broker or the aggregator still coming back: not yet
                pass
            time.sleep(0.5)
        return None


def _assigned(port: int) -> bool:
    from stream_ner.worker.metrics import scrape

    try:
        return scrape(port).get("stream_ner_assigned_partitions", 0) > 0
    except OSError:
        return False


def run(
    cluster: LocalService,
    redis_server: PersistentRedis,
    rate: float,
    seconds: float,
    schedule: list[Planned],
    log_dir: Path,
    seed: int = 0,
    on_tick: Callable[[float, str], None] | None = None,
) -> ChaosDoc:
    """Run the pipeline for ``seconds`` of posts at ``rate`` with ``schedule``'s faults; check the end.

    ``redis_server`` must be running; it is left running. Topics are left for inspection (unique names).
    ``on_tick(elapsed_s, what)``: progress, about twice a second. Never raises for a failed check: the
    returned document says which failed and why (a process that exits by itself fails the run too).
    """
    names = Names.fresh("chaos")
    names.prefix = f"chaos-{uuid.uuid4().hex[:8]}"
    topics = Topics(f"{names.app_id}.raw", names.entities, f"{names.app_id}.dlq", f"{names.app_id}.w")
    pipeline = Pipeline(cluster, redis_server, names, topics, log_dir, rate)
    texts = stream(load_corpus().texts, seed)
    faults: list[ChaosFault] = []
    checks: list[ChaosCheck] = []
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    began = time.monotonic()
    tail = EventTail(cluster.bootstrap, names.entities)
    post_stream = PostStream(cluster.bootstrap, topics.raw, rate, texts)
    tick = on_tick or (lambda _s, _w: None)
    failure = ""
    try:
        pipeline.start()
        tail.start()
        post_stream.start()
        injector = Injector(pipeline, post_stream, tail, random.Random(seed))
        for planned in schedule:
            while post_stream.elapsed() < planned.at_s:
                pipeline.check_alive()
                tick(post_stream.elapsed(), f"next: {planned.kind} at {planned.at_s:.0f} s")
                time.sleep(0.5)
            at = time.monotonic()
            target, own = injector.inject(planned.kind)
            tick(post_stream.elapsed(), f"{planned.kind} ({target}) down, recovering")
            recovery = injector.recover(own, at)
            faults.append(
                {"kind": planned.kind, "target": target, "at_s": round(at - post_stream.began, 1),
                 "recovery_s": recovery}
            )  # fmt: skip
            log.info("%s", faults[-1])
        end = max(seconds, post_stream.elapsed() + TAIL_S)  # the last fault recovers under load too
        while post_stream.elapsed() < end:
            pipeline.check_alive()
            tick(post_stream.elapsed(), "streaming")
            time.sleep(0.5)
        post_stream.halt.set()
        checks = _checks(pipeline, post_stream, tail, faults, tick)
    except (RuntimeError, AssertionError) as exc:  # a process exited by itself
        failure = str(exc)[-4000:]
    finally:
        post_stream.halt.set()
        post_stream.join(150)
        tail.stop()
        pipeline.close()
    if failure:
        checks.append({"name": "no process exited by itself", "passed": False, "detail": failure})
    else:
        checks.append({"name": "no process exited by itself", "passed": True, "detail": ""})
    return {
        "scenario": "chaos",
        "started_at": started_at,
        "wall_s": round(time.monotonic() - began, 1),
        "machine": f"{os.cpu_count()} logical CPUs, load average {os.getloadavg()[0]:.1f} at the end",
        "rate": rate,
        "seconds": seconds,
        "posts": post_stream.acked,
        "events": tail.total,
        "duplicates": tail.total - len(tail.first),
        "faults": faults,
        "checks": checks,
        "passed": all(c["passed"] for c in checks),
    }


def _checks(
    p: Pipeline,
    posts: PostStream,
    tail: EventTail,
    faults: list[ChaosFault],
    tick: Callable[[float, str], None],
) -> list[ChaosCheck]:
    checks: list[ChaosCheck] = []
    posts.join(150)
    acked = not posts.is_alive() and not posts.errors and posts.acked == posts.sent
    checks.append(
        check("every post acknowledged", acked, f"{posts.acked} of {posts.sent}; {posts.errors[:3]}")
    )
    deadline = time.monotonic() + 180
    while len(tail.first) < posts.acked and time.monotonic() < deadline:
        p.check_alive()
        tick(posts.elapsed(), f"draining: {len(tail.first)} of {posts.acked} posts have an event")
        time.sleep(0.5)
    time.sleep(5)  # late repeats from a restarted worker
    ids = {f"c{i:07d}" for i in range(posts.sent)}
    missing = sorted(ids - tail.first.keys())
    checks.append(check("every post id has an event", not missing, f"{len(missing)} missing: {missing[:10]}"))
    tick(posts.elapsed(), "recounting entities")
    expected = recount([EntityEvent.model_validate_json(v) for k, v in tail.first.items() if k in ids])
    reader = TopicReader(p.bootstrap, p.names.aggregates)
    client = redis.Redis.from_url(p.redis.url)
    try:
        tick(posts.elapsed(), f"comparing {len(expected)} brand windows")
        wait_exact(reader, client, p.names.prefix, expected, p.aggregator, timeout=180)
        exact = check(
            "brand-aggregates and Redis equal a recount of entities", True, f"{len(expected)} windows"
        )
    except AssertionError as exc:
        exact = check("brand-aggregates and Redis equal a recount of entities", False, str(exc)[:3000])
    finally:
        reader.close()
        client.close()
    checks.append(exact)
    gaps = gap_lines(p.aggregator.log_path)
    checks.append(check("no input read after a gap in its offsets", not gaps, "\n".join(gaps[:3])))
    deadline, lags = time.monotonic() + 60, (-1, -1)
    while time.monotonic() < deadline:
        tick(posts.elapsed(), f"lag of workers, aggregator: {lags}")
        lags = (
            group_lag(p.bootstrap, p.topics.group, [p.topics.raw]),
            group_lag(p.bootstrap, p.names.app_id, [p.topics.entities]),
        )
        if lags == (0, 0):
            break
        time.sleep(1)
    checks.append(
        check("consumer lag back to zero", lags == (0, 0), f"workers {lags[0]}, aggregator {lags[1]}")
    )
    slow = [f for f in faults if f["recovery_s"] is None]
    checks.append(check("every fault recovered", not slow, f"not within {RECOVERY_TIMEOUT_S:.0f} s: {slow}"))
    return checks


def check(name: str, passed: bool, detail: str) -> ChaosCheck:
    """A check's record; the detail is kept only when it failed, or as a figure when short."""
    return {"name": name, "passed": passed, "detail": detail if not passed or len(detail) < 80 else ""}


def default_rate() -> float:
    """Half the max rate sustained with the aggregator in ``results/maxrate.json`` (else workers only)."""
    figures = json.loads((HERE / "results" / "maxrate.json").read_text())["figures"]
    best = figures.get("max_sustained_with_aggregator_posts_per_s") or figures["max_sustained_posts_per_s"]
    return round(best / 2, 1)


def markdown(doc: dict[str, Any]) -> str:
    """RESULTS.md's chaos section from ``results/chaos.json``."""
    kinds: dict[str, int] = {}
    for fault in doc["faults"]:
        kinds[fault["kind"]] = kinds.get(fault["kind"], 0) + 1
    rows = "\n".join(
        f"| {f['at_s']:.0f} s | {f['kind']} | {f['target']} | "
        f"{'not recovered' if f['recovery_s'] is None else '{:.1f} s'.format(f['recovery_s'])} |"
        for f in doc["faults"]
    )
    verdicts = "\n".join(
        f"- {'pass' if c['passed'] else '**FAIL**'}: {c['name']}"
        + (f" ({c['detail']})" if c["detail"] else "")
        for c in doc["checks"]
    )
    return (
        "<!-- chaos:start -->\n"
        "## Chaos soak\n\n"
        f"`python -m loadtest.chaos --minutes {doc['seconds'] / 60:g} --rate {doc['rate']:g} --write` "
        f"({doc['started_at']}): three brokers (replication factor 3, `min.insync.replicas` 2), two "
        f"static-member workers, the aggregator and a Redis with an append-only file; {doc['rate']:g} "
        f"posts/s for {doc['seconds'] / 60:g} minutes; {doc['machine']}. "
        f"**{len(doc['faults'])} faults** ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}): "
        f"kill -9 of a worker or the aggregator (started again at once), of a broker (started again on its "
        f"data after {BROKER_DOWN_S:g} s), Redis stopped and started again on its data after "
        f"{REDIS_DOWN_S:g} s. Recovery: from the fault until every post acknowledged but the last 2 s has "
        "its event, the aggregator's lag is under 4 s of posts and the part hit is back (worker holds "
        "partitions, aggregator counted a new mention, broker in every ISR, Redis took a write and has "
        "none pending). "
        f"{doc['posts']} posts, {doc['events']} events on `entities` ({doc['duplicates']} duplicates). "
        f"Result: **{'pass' if doc['passed'] else 'FAIL'}**.\n\n"
        f"| at | fault | target | recovery |\n| --- | --- | --- | --- |\n{rows}\n\n{verdicts}\n"
        "<!-- chaos:end -->\n"
    )


def main(argv: list[str] | None = None) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from stream_ner import localstack

    parser = argparse.ArgumentParser(prog="python -m loadtest.chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of posts")
    parser.add_argument("--rate", type=float, default=None, help="posts/s (default: half the max rate)")
    parser.add_argument("--faults", type=int, default=None, help="faults injected (default: 1 per 27 s)")
    parser.add_argument(
        "--schedule",
        default=None,
        help="faults in this order instead of a random plan, comma-separated kinds (worker, aggregator, "
        "broker, redis), one every --every seconds from 5 s",
    )
    parser.add_argument("--every", type=float, default=12.0, help="seconds between --schedule faults")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--write", action="store_true", help="write results/chaos.json and RESULTS.md")
    args = parser.parse_args(argv)
    seconds = args.minutes * 60
    rate = args.rate or default_rate()
    if args.schedule:
        kinds = args.schedule.split(",")
        if unknown := sorted(set(kinds) - set(KINDS)):
            parser.error(f"unknown fault kinds {', '.join(unknown)}: choose from {', '.join(KINDS)}")
        schedule = [Planned(kind, 5.0 + i * args.every) for i, kind in enumerate(kinds)]
    else:
        schedule = plan(seconds, args.faults or max(4, int(seconds / 27)), args.seed)
    scratch = Path(tempfile.mkdtemp(prefix="stream-ner-chaos-"))
    redis_server = PersistentRedis(scratch / "redis")
    cluster = localstack.start_kafka(brokers=3)
    try:
        redis_server.start()
        columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
        with Progress(*columns, TextColumn("{task.fields[what]}")) as progress:
            task = progress.add_task(f"chaos {rate:g}/s", total=seconds, what="starting")
            doc = run(
                cluster, redis_server, rate, seconds, schedule, scratch, args.seed,
                lambda s, what: progress.update(task, completed=min(s, seconds), what=what),
            )  # fmt: skip
    finally:
        redis_server.stop()
        cluster.stop()
    for fault in doc["faults"]:
        print(
            f"{fault['at_s']:6.1f} s  {fault['kind']:<10} {fault['target']:<10} "
            f"recovery {fault['recovery_s']} s"
        )
    for c in doc["checks"]:
        print(f"{'pass' if c['passed'] else 'FAIL'}: {c['name']} {c['detail']}")
    print(f"{doc['posts']} posts, {doc['events']} events, {doc['duplicates']} duplicates; logs: {scratch}")
    if doc["passed"]:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.write:
        write_standalone("chaos", doc, markdown)
    return 0 if doc["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
