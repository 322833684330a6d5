"""Prometheus metrics of one worker process and its ``/metrics`` + ``/health`` HTTP endpoint.

Each worker owns its registry (no module-level globals), so several workers may live in one process.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from stream_ner.errors import ConfigError

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class WorkerMetrics:
    """The worker's counters, gauges and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.consumed = Counter("stream_ner_consumed", "Records read from the input topic.", registry=r)
        self.produced = Counter(
            "stream_ner_produced", "Entity events acknowledged by the broker.", registry=r
        )
        self.rejected = Counter(
            "stream_ner_rejected", "Records sent to the dead-letter topic.", ["code"], registry=r
        )
        self.batch_size = Histogram(
            "stream_ner_batch_size",
            "Posts per inference batch.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.inference_seconds = Histogram(
            "stream_ner_inference_seconds",
            "Time to annotate one batch.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end_seconds = Histogram(
            "stream_ner_end_to_end_seconds",
            "From the input record's Kafka timestamp to its event's acknowledgement.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.dedupe_hits = Counter(
            "stream_ner_dedupe_hits",
            "Posts whose text was annotated before (cached or earlier in the batch): no inference.",
            registry=r,
        )
        self.dedupe_misses = Counter(
            "stream_ner_dedupe_misses",
            "Posts whose text went through the model while the duplicate cache is on.",
            registry=r,
        )
        self.in_flight = Gauge(
            "stream_ner_in_flight_posts", "Records read and not yet acknowledged.", registry=r
        )
        self.in_flight_peak = Gauge(
            "stream_ner_in_flight_posts_peak", "Highest in-flight count since start.", registry=r
        )
        self.paused = Gauge(
            "stream_ner_paused", "1 while input partitions are paused for backpressure.", registry=r
        )
        self.assigned = Gauge("stream_ner_assigned_partitions", "Input partitions assigned.", registry=r)
        self.lag = Gauge(
            "stream_ner_consumer_lag", "Consumer lag per partition.", ["topic", "partition"], registry=r
        )
        self.last_loop = time.monotonic()
        self._peak = 0

    def observe_in_flight(self, count: int) -> None:
        """Update the in-flight gauge and its peak."""
        self.in_flight.set(count)
        if count > self._peak:
            self._peak = count
            self.in_flight_peak.set(count)

    def observe_stats(self, stats_json: str) -> None:
        """Take consumer lag from a librdkafka statistics document."""
        stats: dict[str, Any] = json.loads(stats_json)
        for topic, tstats in stats.get("topics", {}).items():
            for partition, pstats in tstats.get("partitions", {}).items():
                lag = pstats.get("consumer_lag", -1)
                if partition != "-1" and lag >= 0:
                    self.lag.labels(topic, partition).set(lag)


def scrape(port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> dict[str, float]:
    """Read a ``/metrics`` endpoint into ``{"name{labels}": value}`` (for operators, tests and load tests)."""
    import urllib.request

    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


class MetricsServer:
    """Serves ``/metrics`` (Prometheus text format) and ``/health`` in a daemon thread.

    ``/health`` answers 200 while the worker's loop has turned in the last ``stale_after`` seconds and its
    inference thread is alive, 503 otherwise.
    """

    def __init__(self, metrics: WorkerMetrics, host: str, port: int, healthy: Any, stale_after: float = 30.0):
        handler = _handler(metrics, healthy, stale_after)
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:  # taken port, unknown address: a setting to change, not a crash
            raise ConfigError(
                f"cannot serve metrics on {host}:{port} ({exc.strerror or exc}): choose another port with "
                "--metrics-port or STREAM_NER_WORKER__METRICS_PORT (0 turns the endpoint off)"
            ) from exc
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)

    @property
    def port(self) -> int:
        """The bound port (useful when 0 was asked for)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Start serving."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()


def _handler(metrics: WorkerMetrics, healthy: Any, stale_after: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif self.path == "/health":
                ok = healthy() and time.monotonic() - metrics.last_loop < stale_after
                self._send(200 if ok else 503, b"ok\n" if ok else b"unhealthy\n", "text/plain")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence access logs
            return

    return Handler
