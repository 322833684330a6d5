"""Recovery after a worker dies: seconds from ``kill -9`` of one of two workers to its partitions' next event.

One run: a private single-node Kafka (``stream_ner.localstack``; or ``--bootstrap``), fresh topics (6
input partitions), two ``stream-ner worker`` processes of one group and posts at a steady ``--rate``,
spread over every input partition. Once events flow, one worker is killed with SIGKILL and started again
at once under the same name. The recovery time is the arrival, at a consumer of ``entities``, of the first
event from a partition the dead worker held (read from the group's assignment by client id) that was
processed after the kill (its ``processed_at``), minus the time of the kill. Events from the dead worker
itself can never qualify, so this is the stall its partitions saw.

Modes, ``--runs`` each (median reported):

- ``static``: every worker a static member (``STREAM_NER_WORKER__GROUP_INSTANCE_ID``); the restart under
  the same id takes its partitions back without a rebalance: bounded by the worker's own start-up.
- ``dynamic``: no instance ids; the restart is a new member, and the dead one holds its partitions until
  its session times out (``STREAM_NER_WORKER__SESSION_TIMEOUT_MS``, 45 s by default).

    python -m loadtest.recovery                 # 3 runs per mode (~6 min on 2 cores)
    python -m loadtest.recovery --write         # also results/recovery.json and RESULTS.md's section
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import resources

import psutil
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from loadtest.report import write_standalone
from loadtest.stack import INPUT_PARTITIONS, Broker, Topics, WorkerConfig, WorkerPool
from stream_ner.settings import Settings

MODES = ("static", "dynamic")
VICTIM = "w2"


@dataclass(frozen=True)
class Run:
    """One kill and restart."""

    mode: str
    recovery_s: float  # kill -9 -> first event processed after it from the dead worker's partitions
    partitions: list[int]  # the dead worker's input partitions


@dataclass(frozen=True)
class Result:
    """``results/recovery.json``."""

    started_at: str
    rate: float
    session_timeout_ms: int
    machine: str
    runs: list[Run]

    def median(self, mode: str) -> float:
        return statistics.median(r.recovery_s for r in self.runs if r.mode == mode)


class Stream(threading.Thread):
    """Posts at ``rate`` per second, round-robin over the input partitions, until :meth:`stop`."""

    def __init__(self, bootstrap: str, topic: str, rate: float) -> None:
        super().__init__(daemon=True)
        lines = (resources.files("stream_ner") / "samples" / "posts.jsonl").read_text().splitlines()
        self.texts = [json.loads(line)["text"] for line in lines if line.strip()]
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "acks": "all"})
        self.topic, self.rate, self.done = topic, rate, threading.Event()

    def run(self) -> None:
        began, seq = time.monotonic(), 0
        while not self.done.is_set():
            time.sleep(max(0.0, began + seq / self.rate - time.monotonic()))
            post = {"id": f"r{seq}", "text": self.texts[seq % len(self.texts)]}
            self.producer.produce(self.topic, json.dumps(post).encode(), f"r{seq}", seq % INPUT_PARTITIONS)
            self.producer.poll(0)
            seq += 1
        self.producer.flush(10)

    def stop(self) -> None:
        self.done.set()
        self.join(30)


def assignment(bootstrap: str, group: str, client_id: str) -> list[int]:
    """The input partitions the group has given to the member with ``client_id``."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    [description] = [f.result(30) for f in admin.describe_consumer_groups([group]).values()]
    return sorted(
        tp.partition
        for member in description.members
        if member.client_id == client_id
        for tp in member.assignment.topic_partitions
    )


def tail_consumer(bootstrap: str, topic: str) -> Consumer:
    """A consumer of ``topic`` from its end, assigned and positioned before this returns."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"recovery-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "latest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    deadline = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(0.2)
    return consumer


def measure(bootstrap: str, mode: str, rate: float, timeout: float) -> Run:
    """One run of ``mode`` on fresh topics: start two workers, stream, kill -9 one, restart it, time."""
    topics = Topics.fresh(f"recovery-{mode}")
    topics.create(bootstrap)
    pool = WorkerPool(bootstrap, topics, WorkerConfig(intra_op_threads=1), count=2, static=mode == "static")
    stream = Stream(bootstrap, topics.raw, rate)
    consumer = tail_consumer(bootstrap, topics.entities)
    try:
        pool.start()
        stream.start()
        _first_event(consumer, lambda _event: True, 60)  # events flow, offsets get committed
        time.sleep(3)
        dead = assignment(bootstrap, topics.group, VICTIM)
        assert dead, f"{VICTIM} holds no partitions"
        killed_ns = time.time_ns()
        killed = time.monotonic()
        pool.kill(VICTIM)
        pool.respawn(VICTIM)
        processed_after = datetime.fromtimestamp(killed_ns / 1e9, UTC)
        recovered = _first_event(
            consumer,
            lambda e: (
                e["origin"]["partition"] in dead
                and datetime.fromisoformat(e["processed_at"]) > processed_after
            ),
            timeout,
        )
        run = Run(mode, round(recovered - killed, 2), dead)
    finally:
        stream.stop()
        consumer.close()
        pool.stop()
        topics.delete(bootstrap)
    shutil.rmtree(pool.log_dir, ignore_errors=True)  # the workers' logs are kept when a run fails
    return run


def _first_event(consumer: Consumer, wanted: Callable[[dict], bool], timeout: float) -> float:
    """``time.monotonic()`` at the arrival of the first event ``wanted(event)`` accepts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = consumer.poll(0.05)
        if message is None or message.error() or message.value() is None:
            continue
        if wanted(json.loads(message.value() or b"{}")):
            return time.monotonic()
    raise RuntimeError(f"no such event within {timeout:.0f} s")


def markdown(result: dict) -> str:
    """RESULTS.md's recovery section from ``results/recovery.json``."""
    rows = "\n".join(
        f"| {mode} | {statistics.median(runs):.1f} s | {', '.join(f'{r:.1f}' for r in runs)} |"
        for mode in MODES
        if (runs := [r["recovery_s"] for r in result["runs"] if r["mode"] == mode])
    )
    static = [r["recovery_s"] for r in result["runs"] if r["mode"] == "static"]
    verdict = ""
    if static:
        met = "met" if statistics.median(static) < 5 else "not met"
        verdict = f"\n\nAim: under 5 s with static membership and a restart: **{met}**."
    return (
        "<!-- recovery:start -->\n"
        "## Recovery after a worker dies\n\n"
        f"`python -m loadtest.recovery --write` ({result['started_at']}): two workers, 6 input partitions, "
        f"{result['rate']:g} posts/s; one worker killed with SIGKILL and started again at once. Time from "
        "the kill to the first event processed after it from a partition the dead worker held, as a "
        "consumer of `entities` sees it; "
        f"{result.get('machine', 'machine not recorded')}. Session timeout "
        f"{result['session_timeout_ms'] / 1000:g} s.\n\n"
        "| membership | median | runs |\n| --- | --- | --- |\n"
        f"{rows}{verdict}\n"
        "<!-- recovery:end -->\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.recovery", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per mode")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: static, dynamic")
    parser.add_argument("--rate", type=float, default=30.0, help="posts/s")
    parser.add_argument("--bootstrap", default=None, help="a running local broker (default: a private one)")
    parser.add_argument("--write", action="store_true", help="write results/recovery.json and RESULTS.md")
    args = parser.parse_args(argv)
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    broker = Broker.use(args.bootstrap) if args.bootstrap else Broker.start()
    runs = []
    try:
        for mode in args.modes.split(","):
            for i in range(args.runs):
                run = measure(broker.bootstrap, mode, args.rate, timeout=120)
                print(f"{mode} run {i + 1}: {run.recovery_s:.2f} s (partitions {run.partitions})", flush=True)
                runs.append(run)
    finally:
        broker.stop()
    machine = f"{psutil.cpu_count()} logical CPUs, load average {os.getloadavg()[0]:.1f} at the end"
    result = Result(started_at, args.rate, Settings().worker.session_timeout_ms, machine, runs)
    for mode in args.modes.split(","):
        print(f"{mode}: median {result.median(mode):.2f} s")
    if args.write:
        write_standalone("recovery", asdict(result), markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
