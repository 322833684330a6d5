"""What connected browsers cost the dashboard: its CPU with 0 and N live clients at a steady event rate.

Runs everything on 127.0.0.1: a private Kafka and Redis (``stream_ner.localstack``), ``stream-ner
aggregate`` and ``stream-ner dashboard`` as subprocesses, and here a generator of entity events (every
catalog brand, Zipf-weighted, one to three per post, with entity spans) produced straight to ``entities``
at ``--rate`` events/s (no workers: the dashboard's cost is measured, not the model's). Clients are
server-sent-event connections to ``/api/events`` (half on each window family) that read and parse every
frame, as ``EventSource`` does; each feed item's ``entities_ms`` gives the delay from the event reaching
``entities`` to a client receiving it.

Phases after ``--warmup`` seconds: ``--seconds`` with no client, then ``--seconds`` with ``--clients``.
The dashboard process's CPU is ``psutil`` user+system time over each phase, in % of one core.

    python -m loadtest.dashboard                       # 50 clients, 20 events/s, 60 s phases
    python -m loadtest.dashboard --write               # also results/dashboard.json and RESULTS.md's section
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from loadtest.report import write_standalone

WINDOWS = ["1m", "1h"]


@dataclass
class Phase:
    clients: int
    seconds: float
    cpu_percent: float  # of one core, the dashboard process
    rss_mb: float
    frames_per_client_s: float = 0.0
    bytes_per_client_s: float = 0.0
    feed_delay_ms_p50: float | None = None
    feed_delay_ms_p95: float | None = None
    feed_delay_ms_max: float | None = None


@dataclass
class Result:
    started_at: str
    rate: float
    brands: int
    events_sent: int
    machine: str
    phases: list[Phase] = field(default_factory=list)


class Generator:
    """Entity events for every catalog brand straight to ``entities``, at a steady rate, in a thread."""

    def __init__(self, bootstrap: str, topic: str, rate: float) -> None:
        from confluent_kafka import Producer

        from stream_ner.brands.catalog import load_catalog

        self.brands = sorted(load_catalog().brands.values(), key=lambda b: b.id)
        self.weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(self.brands))]
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        self.topic, self.rate = topic, rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def event(self, n: int) -> dict[str, Any]:
        chosen = {b.id: b for b in random.choices(self.brands, self.weights, k=random.randint(1, 3))}
        text, entities = "", []
        for brand in chosen.values():
            text += random.choice(["Loving ", "Not sure about ", "Just bought from ", "Anyone else on "])
            entities.append(
                {"start": len(text), "end": len(text) + len(brand.name), "label": "ORG", "score": 0.97,
                 "text": brand.name, "brand": brand.id}
            )  # fmt: skip
            text += brand.name + random.choice([" today. ", " again!! ", " in London. ", " 🔥 "])
        now = datetime.now(UTC).isoformat()
        return {
            "post_id": f"lt-{n}",
            "text": text.strip(),
            "entities": entities,
            "brands": sorted(chosen),
            "created_at": now,
            "author": f"user{random.randint(0, 400)}",
            "lang": "en",
            "source": "loadtest",
            "metadata": {},
            "sentiment": None,
            "model": {"name": "loadtest", "version": "0"},
            "origin": {"topic": "raw-posts", "partition": 0, "offset": n, "timestamp_ms": None},
            "processed_at": now,
        }

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            value = json.dumps(self.event(self.sent)).encode()
            self.producer.produce(self.topic, key=f"lt-{self.sent}".encode(), value=value)
            self.producer.poll(0)
            self.sent += 1
            self._stop.wait(max(0.0, started + self.sent / self.rate - time.monotonic()))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.producer.flush(10)


@dataclass
class ClientStats:
    frames: int = 0
    bytes: int = 0
    delays_ms: list[float] = field(default_factory=list)


async def sse_client(port: int, window: str, stats: ClientStats, stop: asyncio.Event) -> None:
    """One browser's event stream: read, split into events, parse the JSON, note feed delays."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        f"GET /api/events?window={window} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
    )
    writer.write(request.encode())
    await writer.drain()
    buffer = b""
    try:
        while not stop.is_set():
            try:
                chunk = await asyncio.wait_for(reader.read(65536), 0.5)
            except TimeoutError:
                continue
            if not chunk:
                break
            stats.bytes += len(chunk)
            buffer += chunk
            *events, buffer = buffer.split(b"\n\n")
            now_ms = time.time() * 1000
            for raw in events:
                lines = raw.split(b"\n")
                name = next((ln[7:] for ln in lines if ln.startswith(b"event: ")), None)
                data = next((ln[6:] for ln in lines if ln.startswith(b"data: ")), None)
                if name is None or data is None:
                    continue
                stats.frames += 1
                value = json.loads(data)
                if name == b"feed":
                    stats.delays_ms.extend(now_ms - item["entities_ms"] for item in value)
    finally:
        writer.close()


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


async def measure(pid: int, port: int, clients: int, seconds: float) -> Phase:
    proc = psutil.Process(pid)
    stop = asyncio.Event()
    stats = [ClientStats() for _ in range(clients)]
    tasks = [asyncio.create_task(sse_client(port, WINDOWS[i % 2], s, stop)) for i, s in enumerate(stats)]
    await asyncio.sleep(3.0 if clients else 0.0)  # connected, snapshots sent
    for s in stats:  # count the steady state only
        s.frames, s.bytes, s.delays_ms = 0, 0, []
    cpu0, t0 = cpu_seconds(proc), time.monotonic()
    await asyncio.sleep(seconds)
    cpu1, t1 = cpu_seconds(proc), time.monotonic()
    rss = proc.memory_info().rss / 2**20
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = t1 - t0
    phase = Phase(clients, round(elapsed, 1), round(100 * (cpu1 - cpu0) / elapsed, 1), round(rss, 1))
    if clients:
        delays = sorted(d for s in stats for d in s.delays_ms)
        phase.frames_per_client_s = round(sum(s.frames for s in stats) / clients / elapsed, 2)
        phase.bytes_per_client_s = round(sum(s.bytes for s in stats) / clients / elapsed)
        if delays:
            phase.feed_delay_ms_p50 = round(statistics.median(delays), 1)
            phase.feed_delay_ms_p95 = round(delays[int(0.95 * (len(delays) - 1))], 1)
            phase.feed_delay_ms_max = round(delays[-1], 1)
    return phase


def markdown(result: dict[str, Any]) -> str:
    """The RESULTS.md section of a result (``results/dashboard.json``); ``loadtest.report`` renders it too."""
    phases = [Phase(**p) for p in result["phases"]]
    rows = "\n".join(
        f"| {p.clients} | {p.cpu_percent}% | {p.rss_mb:.0f} MB | "
        + (
            f"{p.frames_per_client_s} | {p.bytes_per_client_s / 1024:.1f} KB/s | "
            f"{p.feed_delay_ms_p50} / {p.feed_delay_ms_p95} / {p.feed_delay_ms_max} ms |"
            if p.clients
            else "– | – | – |"
        )
        for p in phases
    )
    loaded = next((p for p in phases if p.clients), None)
    verdict = ""
    if loaded is not None:
        met = "met" if loaded.cpu_percent < 25 else "not met"
        aim = f"{loaded.clients} browsers under 25% of one core at {result['rate']:g} events/s"
        verdict = f"\n\nAim: {aim}: **{met}**."
    return (
        "<!-- dashboard:start -->\n"
        "## Dashboard: cost of connected browsers\n\n"
        f"`python -m loadtest.dashboard --write` ({result['started_at']}): {result['rate']:g} entity "
        f"events/s over {result['brands']} brands produced straight to `entities`, the aggregator and one "
        "`stream-ner dashboard` process on a private Kafka and Redis, clients reading `/api/events` "
        "(server-sent events, half on each window family) and parsing every frame. CPU is the dashboard "
        f"process's user+system time, in % of one core, over {phases[0].seconds:g} s per phase; "
        f"{result['machine']}.\n\n"
        "| browsers | dashboard CPU | RSS | frames/s per browser | bytes per browser | "
        "feed delay p50 / p95 / max (event on `entities` -> browser) |\n"
        "| --- | --- | --- | --- | --- | --- |\n"
        f"{rows}{verdict}\n"
        "<!-- dashboard:end -->\n"
    )


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.dashboard", description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rate", type=float, default=20.0, help="entity events/s")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--write", action="store_true", help="write results/dashboard.json and RESULTS.md")
    args = parser.parse_args(argv)

    from confluent_kafka.admin import AdminClient, NewTopic

    from stream_ner import localstack
    from stream_ner.topics import wait_for_leaders

    tag = f"lt-dash-{uuid.uuid4().hex[:6]}"
    logs = Path(tempfile.mkdtemp(prefix="loadtest-dashboard-"))
    procs: list[subprocess.Popen[bytes]] = []
    with localstack.start_kafka() as kafka, localstack.start_redis() as redis:
        topics = [f"{tag}.entities", f"{tag}.aggregates", f"{tag}.alerts"]
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
        for future in admin.create_topics([NewTopic(t, 6, 1) for t in topics]).values():
            future.result(30)
        wait_for_leaders(admin, topics)
        port = localstack.free_port()
        env = os.environ | {
            "STREAM_NER_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap,
            "STREAM_NER_TOPICS__ENTITIES": topics[0],
            "STREAM_NER_TOPICS__BRAND_AGGREGATES": topics[1],
            "STREAM_NER_TOPICS__BRAND_ALERTS": topics[2],
            "STREAM_NER_REDIS__URL": redis.url,
            "STREAM_NER_REDIS__KEY_PREFIX": tag,
            "STREAM_NER_AGGREGATE__APP_ID": tag,
            "STREAM_NER_AGGREGATE__REPLICATION_FACTOR": "1",
            "STREAM_NER_AGGREGATE__METRICS_PORT": "0",
            "STREAM_NER_DASHBOARD__PORT": str(port),
        }
        for name, command in (("aggregator", ["aggregate"]), ("dashboard", ["dashboard"])):
            with (logs / f"{name}.log").open("wb") as out:
                procs.append(
                    subprocess.Popen([sys.executable, "-m", "stream_ner", *command], env=env, stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                )  # fmt: skip
        dashboard = procs[1]
        generator = Generator(kafka.bootstrap, topics[0], args.rate)
        try:
            wait_http(f"http://127.0.0.1:{port}/health", 60)
            generator.start()
            print(f"warming up {args.warmup:g} s (logs in {logs})", flush=True)
            time.sleep(args.warmup)
            result = Result(
                started_at=datetime.now(UTC).isoformat(timespec="seconds"),
                rate=args.rate,
                brands=len(generator.brands),
                events_sent=0,
                machine=f"{psutil.cpu_count()} logical CPUs, Python {sys.version.split()[0]}",
            )
            for clients in (0, args.clients):
                phase = asyncio.run(measure(dashboard.pid, port, clients, args.seconds))
                print(json.dumps(asdict(phase)), flush=True)
                result.phases.append(phase)
                for proc in procs:
                    if proc.poll() is not None:
                        raise RuntimeError(f"a child exited with {proc.returncode}; logs in {logs}")
            result.events_sent = generator.sent
        finally:
            generator.stop()
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print(markdown(asdict(result)))
    if args.write:
        write_standalone("dashboard", asdict(result), markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
