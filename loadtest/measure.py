"""What a load test observes: end-to-end latency per post, throughput, backlog, consumer lag, CPU and RSS.

- ``LatencyRecorder`` (pure): latencies in an HDR histogram (µs, 1 µs to 10 min, 3 significant digits)
  plus per-second series by send time, and arrivals per second.
- ``EventCollector``: a thread consuming the entities topic from its start; each event's latency is its
  arrival here minus the ``sent_at_ns`` its post carried (same host, same wall clock), filed under the
  step the post was sent in (``metadata.loadtest``). Duplicates (at-least-once) are counted, not timed.
- ``LagProbe``: the workers' consumer lag on the input topic: high watermarks minus committed offsets.
- ``Sampler``: a thread taking, every interval, the backlog (sent minus received), the lag, and the CPU
  and RSS of the watched processes (workers, broker, this process) and of the whole machine.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from hdrh.histogram import HdrHistogram

from loadtest.readers import watcher
from loadtest.schema import LatencySplit, LatencySummary, Sample, TimelineRow

PERCENTILES = (50.0, 95.0, 99.0, 99.9)
_HIGHEST_US = 600_000_000


def new_histogram() -> HdrHistogram:
    """An empty latency histogram in microseconds."""
    return HdrHistogram(1, _HIGHEST_US, 3)


def summarize(histogram: HdrHistogram) -> LatencySummary:
    """Count, mean, p50/p95/p99/p99.9 and max of a µs histogram, in milliseconds (all 0 when empty)."""
    count = histogram.get_total_count()

    def ms(value_us: float) -> float:
        return round(value_us / 1000, 2) if count else 0.0

    p50, p95, p99, p999 = (ms(histogram.get_value_at_percentile(p)) for p in PERCENTILES)
    return LatencySummary(
        count=float(count),
        mean_ms=ms(histogram.get_mean_value()),
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        p999_ms=p999,
        max_ms=ms(histogram.get_max_value()),
    )


def encode(histogram: HdrHistogram) -> str:
    """The histogram in HdrHistogram's compressed base64 form (text, for JSON)."""
    raw = histogram.encode()
    return raw.decode("ascii") if isinstance(raw, bytes) else str(raw)


def decode(encoded: str) -> HdrHistogram:
    """Inverse of ``encode``."""
    return HdrHistogram.decode(encoded.encode("ascii"))


def cdf(histogram: HdrHistogram, points: int = 200) -> list[tuple[float, float]]:
    """(percentile, latency ms) pairs from p0 to p99.99 and max, spaced for a log "nines" axis."""
    if not histogram.get_total_count():
        return []
    nines = np.linspace(0, 4, points)  # 0 .. 99.99 %
    out = [
        (float(100 * (1 - 10**-n)), histogram.get_value_at_percentile(100 * (1 - 10**-n)) / 1000)
        for n in nines
    ]
    out.append((100.0, histogram.get_max_value() / 1000))
    return out


@dataclass
class LatencyRecorder:
    """The latencies of one step. ``origin_ns``: the step's start (wall clock), for the per-second series."""

    origin_ns: int
    histogram: HdrHistogram = field(default_factory=new_histogram)
    by_send_second: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    arrivals: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    to_event_ms: list[float] = field(default_factory=list)
    after_event_ms: list[float] = field(default_factory=list)

    def record(self, sent_ns: int, arrived_ns: int, processed_ns: int | None = None) -> None:
        """One post's latency (clamped to 1 µs: the clocks are the same, so only rounding goes negative).

        ``processed_ns``: when the worker built the event (its ``processed_at``), which splits the latency
        into send -> event built (queueing, batching, inference) and event built -> arrival (produce,
        acknowledgement, consume).
        """
        if processed_ns is not None:
            self.to_event_ms.append((processed_ns - sent_ns) / 1e6)
            self.after_event_ms.append((arrived_ns - processed_ns) / 1e6)
        latency_us = max(1, (arrived_ns - sent_ns) // 1000)
        self.histogram.record_value(min(latency_us, _HIGHEST_US))
        self.by_send_second[int((sent_ns - self.origin_ns) // 1_000_000_000)].append(latency_us / 1000)
        self.arrivals[int((arrived_ns - self.origin_ns) // 1_000_000_000)] += 1

    def summary(self) -> LatencySummary:
        """``summarize`` of the step's histogram."""
        return summarize(self.histogram)

    def split(self) -> LatencySplit:
        """p50 and p99 of the two parts of the latency (see ``record``), in ms; empty when not known."""
        out = LatencySplit()
        if self.to_event_ms:
            p50, p99 = np.percentile(self.to_event_ms, [50, 99])
            out["to_event_p50_ms"], out["to_event_p99_ms"] = round(float(p50), 2), round(float(p99), 2)
        if self.after_event_ms:
            p50, p99 = np.percentile(self.after_event_ms, [50, 99])
            out["after_event_p50_ms"], out["after_event_p99_ms"] = round(float(p50), 2), round(float(p99), 2)
        return out

    def timeline(self) -> list[TimelineRow]:
        """Per second since the origin: posts sent then and their p50/p99/max latency; events arrived then."""
        seconds = sorted(set(self.by_send_second) | set(self.arrivals))
        rows = []
        for second in seconds:
            values = np.asarray(self.by_send_second.get(second, []))
            row = TimelineRow(t=second, received=self.arrivals.get(second, 0), timed=len(values))
            if len(values):
                p50, p99 = np.percentile(values, [50, 99])
                row["p50_ms"], row["p99_ms"] = round(float(p50), 2), round(float(p99), 2)
                row["max_ms"] = round(float(values.max()), 2)
            rows.append(row)
        return rows


class EventCollector:
    """Consumes the entities topic in a thread and times every event of a load-test post.

    ``register(step, origin_ns)`` before a step's first post; ``received(step)`` counts distinct posts seen;
    ``finish(step)`` before reading the step's recorder (the collector thread no longer writes to it).
    Events of posts from other producers (no ``metadata.loadtest``) are ignored.
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = watcher(
            bootstrap, "loadtest-collector", **{"fetch.wait.max.ms": 20, "enable.partition.eof": False}
        )
        self._topic = topic
        self._lock = threading.Lock()
        self._steps: dict[str, LatencyRecorder] = {}
        self._seen: dict[str, set[str]] = defaultdict(set)
        self.duplicates: dict[str, int] = defaultdict(int)
        self.late: dict[str, int] = defaultdict(int)
        self._finished: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loadtest-collector", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        """Assign every partition of the topic from its start and begin consuming."""
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        metadata = self._consumer.list_topics(self._topic, timeout=10).topics[self._topic]
        self._consumer.assign([TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in metadata.partitions])
        self._thread.start()

    def stop(self) -> None:
        """Stop consuming and close the consumer."""
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()

    def register(self, step: str, origin_ns: int) -> LatencyRecorder:
        """Start recording a step; returns its recorder (read it after the step drained)."""
        with self._lock:
            recorder = self._steps[step] = LatencyRecorder(origin_ns)
        return recorder

    def finish(self, step: str) -> None:
        """Stop timing ``step``: its recorder is safe to read; later events only count as ``late``."""
        with self._lock:
            self._steps.pop(step, None)
            self._finished.add(step)

    def received(self, step: str) -> int:
        """Distinct posts of ``step`` seen so far."""
        with self._lock:
            return len(self._seen.get(step, ()))

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                # poll returns as soon as one event is there; a batch consume would hold it until the
                # batch is full or its timeout expires, adding up to that timeout to every latency.
                first = self._consumer.poll(0.05)
                if first is None:
                    continue
                arrived = time.time_ns()
                for message in [first, *self._consumer.consume(500, timeout=0)]:
                    if message.error() is None:
                        self._take(message.value(), arrived)
        except BaseException as exc:  # surfaced by the scenario, which fails loudly
            self.error = exc

    def _take(self, value: bytes | None, arrived_ns: int) -> None:
        event = json.loads(value) if value else {}
        meta = event.get("metadata") or {}
        step, sent_ns = meta.get("loadtest"), meta.get("sent_at_ns")
        with self._lock:
            if not isinstance(step, str):
                return
            recorder = self._steps.get(step)
            if recorder is None or not isinstance(sent_ns, int):
                if step in self._finished:
                    self.late[step] += 1
                return
            seen = self._seen[step]
            if event["post_id"] in seen:
                self.duplicates[step] += 1
                return
            seen.add(event["post_id"])
            recorder.record(sent_ns, arrived_ns, _epoch_ns(event.get("processed_at")))


def _epoch_ns(iso: object) -> int | None:
    """An ISO 8601 timestamp with a zone as ns since the epoch; ``None`` when absent or unreadable."""
    if not isinstance(iso, str):
        return None
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


class LagProbe:
    """The consumer group's lag on the input topic (sum over partitions of high watermark - committed)."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        from confluent_kafka import Consumer, TopicPartition

        # Not subscribed: it only asks the group's committed offsets and never joins the group.
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
        )
        partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._tps = [TopicPartition(topic, p) for p in partitions]

    def lag(self) -> int:
        """Current lag; a partition without a committed offset counts from its low watermark."""
        committed = self._consumer.committed(self._tps, timeout=5)
        total = 0
        for tp in committed:
            low, high = self._consumer.get_watermark_offsets(tp, timeout=5, cached=False)
            total += high - (tp.offset if tp.offset >= 0 else low)
        return total

    def close(self) -> None:
        """Release the client."""
        self._consumer.close()


class Sampler:
    """Samples backlog, lag, per-process CPU (% of one core) and RSS (MB), and machine CPU (% of all)."""

    def __init__(
        self,
        processes: dict[str, int],
        backlog: Callable[[], int] | None = None,
        lag: Callable[[], int] | None = None,
        interval_s: float = 0.5,
    ) -> None:
        import psutil

        self._psutil = psutil
        self._procs = {name: psutil.Process(pid) for name, pid in processes.items()}
        self._backlog, self._lag, self._interval = backlog, lag, interval_s
        self.rows: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loadtest-sampler", daemon=True)
        self._t0 = 0.0

    def __enter__(self) -> Sampler:
        for proc in self._procs.values():
            proc.cpu_percent(None)
        self._psutil.cpu_percent(None)
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            row: Sample = {"t": round(time.monotonic() - self._t0, 2)}
            if self._backlog is not None:
                row["backlog"] = self._backlog()
            if self._lag is not None:
                try:
                    row["lag"] = self._lag()
                except Exception:  # a slow broker answer must not end the sampling
                    row["lag"] = None
            row["cpu_machine"] = self._psutil.cpu_percent(None)
            for name, proc in self._procs.items():
                try:
                    with proc.oneshot():
                        row[f"cpu_{name}"] = round(proc.cpu_percent(None), 1)
                        row[f"rss_mb_{name}"] = round(proc.memory_info().rss / 2**20, 1)
                except self._psutil.Error:
                    row[f"cpu_{name}"] = row[f"rss_mb_{name}"] = None
            self.rows.append(row)


def column(rows: list[Sample], key: str) -> list[float]:
    """The non-null values of one sampled column."""
    return [row[key] for row in rows if row.get(key) is not None]


def median_of(rows: list[Sample], key: str) -> float | None:
    """Median of a sampled column, or ``None`` when it was never sampled."""
    values = column(rows, key)
    return round(float(np.median(values)), 1) if values else None
