"""The system under test: a local broker, a fresh set of topics, and ``stream-ner worker`` processes.

Everything runs on 127.0.0.1. ``Broker.start()`` starts a private single-node Kafka through
``stream_ner.localstack`` (stopped on exit, or by its watchdog should this process die); ``Broker.use()``
takes an already running local one. Each scenario creates its own uniquely named topics, so runs never
see each other's records; they are deleted at the end. Workers are real subprocesses configured only by
``STREAM_NER_*`` environment variables, as users run them; their logs go to a scratch directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from loadtest.generate import ensure_local
from loadtest.peers import CHECKPOINT_ENV
from stream_ner.localstack import free_port
from stream_ner.settings import WorkerSettings
from stream_ner.topics import wait_for_leaders
from stream_ner.worker.metrics import scrape

INPUT_PARTITIONS = 6
OUTPUT_PARTITIONS = 6


@dataclass
class Broker:
    """A local Kafka broker; ``pid`` is known when this process started it."""

    bootstrap: str
    pid: int | None = None
    _service: object | None = None

    @classmethod
    def start(cls) -> Broker:
        """A private broker on a free port."""
        from stream_ner import localstack

        service = localstack.start_kafka()
        return cls(service.bootstrap, service.pid, service)

    @classmethod
    def use(cls, bootstrap: str) -> Broker:
        """An already running broker on the loopback interface."""
        ensure_local(bootstrap)
        return cls(bootstrap)

    def stop(self) -> None:
        """Stop the broker if this process started it."""
        if self._service is not None:
            self._service.stop()  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Topics:
    """Topic and group names of one scenario."""

    raw: str
    entities: str
    dlq: str
    group: str

    @classmethod
    def fresh(cls, scenario: str) -> Topics:
        """Unique names for ``scenario``."""
        tag = f"loadtest-{scenario}-{uuid.uuid4().hex[:6]}"
        return cls(f"{tag}.raw", f"{tag}.entities", f"{tag}.dlq", f"{tag}.workers")

    def create(self, bootstrap: str) -> None:
        """Create the topics (replication factor 1) and wait until every partition has a leader."""
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": bootstrap})
        layout = {self.raw: INPUT_PARTITIONS, self.entities: OUTPUT_PARTITIONS, self.dlq: 1}
        futures = admin.create_topics([NewTopic(name, n, 1) for name, n in layout.items()])
        for future in futures.values():
            future.result(30)
        wait_for_leaders(admin, layout)

    def delete(self, bootstrap: str) -> None:
        """Delete the topics (best effort)."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.delete_topics([self.raw, self.entities, self.dlq]).values():
            try:
                future.result(30)
            except Exception:  # already gone or broker stopping: nothing to clean
                pass


_WORKER_DEFAULTS = WorkerSettings.model_fields


@dataclass(frozen=True)
class WorkerConfig:
    """The worker settings a scenario varies; everything else is the default."""

    max_batch_posts: int = _WORKER_DEFAULTS["max_batch_posts"].default
    max_wait_ms: int = _WORKER_DEFAULTS["max_wait_ms"].default
    precision: str = "int8"
    intra_op_threads: int = 2
    queue_max_posts: int = _WORKER_DEFAULTS["queue_max_posts"].default
    model: str | None = None  # artifact directory; None: the shipped default
    dedupe_cache_size: int = _WORKER_DEFAULTS["dedupe_cache_size"].default  # 0: duplicate suppression off
    peer: str | None = None  # run this peer consumer (``loadtest.peers``) in place of stream-ner's worker
    peer_checkpoint: str | None = None  # the naive peer's checkpoint (``peers.prepare``)

    def env(self) -> dict[str, str]:
        """As ``STREAM_NER_*`` environment variables (and the peer's checkpoint)."""
        model = {"STREAM_NER_MODEL__PATH": self.model} if self.model else {}
        if self.peer_checkpoint:
            model[CHECKPOINT_ENV] = self.peer_checkpoint
        return model | {
            "STREAM_NER_WORKER__MAX_BATCH_POSTS": str(self.max_batch_posts),
            "STREAM_NER_WORKER__MAX_WAIT_MS": str(self.max_wait_ms),
            "STREAM_NER_WORKER__QUEUE_MAX_POSTS": str(self.queue_max_posts),
            "STREAM_NER_WORKER__DEDUPE_CACHE_SIZE": str(self.dedupe_cache_size),
            "STREAM_NER_MODEL__PRECISION": self.precision,
            "STREAM_NER_MODEL__INTRA_OP_THREADS": str(self.intra_op_threads),
        }


@dataclass
class WorkerProcess:
    """One ``stream-ner worker`` subprocess."""

    name: str
    proc: subprocess.Popen[bytes]
    metrics_port: int
    log_path: Path

    def metrics(self) -> dict[str, float]:
        """The worker's Prometheus metrics as ``{"name{labels}": value}``."""
        return scrape(self.metrics_port)

    def log_tail(self) -> str:
        """The end of the worker's log."""
        return self.log_path.read_text(errors="replace")[-3000:]


@dataclass
class WorkerPool:
    """``count`` workers of one consumer group, started together and stopped together."""

    bootstrap: str
    topics: Topics
    config: WorkerConfig
    count: int = 1
    static: bool = False  # each worker a static group member (group.instance.id: group and worker name)
    workers: list[WorkerProcess] = field(default_factory=list)
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="stream-ner-loadtest-")))

    def start(self, timeout: float = 120.0) -> None:
        """Start the workers and wait until the group's assignment covers every input partition."""
        for index in range(self.count):
            self.workers.append(self._spawn(f"w{index + 1}"))
        deadline = time.monotonic() + timeout
        stable_since = None
        while time.monotonic() < deadline:
            assigned = [self._assigned(worker) for worker in self.workers]
            if sum(assigned) == INPUT_PARTITIONS and all(assigned):
                stable_since = stable_since or time.monotonic()
                if time.monotonic() - stable_since >= 1.0:
                    return
            else:
                stable_since = None
            time.sleep(0.2)
        tails = "\n".join(f"--- {w.name}\n{w.log_tail()}" for w in self.workers)
        self.stop()
        raise RuntimeError(
            f"workers did not share the {INPUT_PARTITIONS} partitions in {timeout:.0f}s:\n{tails}"
        )

    def pids(self) -> dict[str, int]:
        """Process id by worker name."""
        return {worker.name: worker.proc.pid for worker in self.workers}

    def check_alive(self) -> None:
        """Raise when a worker has exited."""
        for worker in self.workers:
            if worker.proc.poll() is not None:
                raise RuntimeError(
                    f"worker {worker.name} exited with {worker.proc.returncode}:\n{worker.log_tail()}"
                )

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every worker, wait, SIGKILL stragglers."""
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait(10)
        self.workers.clear()

    def kill(self, name: str) -> None:
        """SIGKILL one worker and reap it; it stays in ``workers`` until :meth:`respawn`."""
        worker = next(w for w in self.workers if w.name == name)
        worker.proc.kill()
        worker.proc.wait(10)

    def respawn(self, name: str) -> WorkerProcess:
        """Start worker ``name`` again (when ``static``, under its instance id) in place of the old one."""
        index = next(i for i, w in enumerate(self.workers) if w.name == name)
        self.workers[index] = self._spawn(name)
        return self.workers[index]

    def _assigned(self, worker: WorkerProcess) -> int:
        if worker.proc.poll() is not None:
            raise RuntimeError(
                f"worker {worker.name} exited with {worker.proc.returncode}:\n{worker.log_tail()}"
            )
        try:
            return int(worker.metrics().get("stream_ner_assigned_partitions", 0))
        except OSError:
            return 0

    def _spawn(self, name: str) -> WorkerProcess:
        port = free_port()
        env = (
            os.environ
            | self.config.env()
            | {
                "STREAM_NER_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
                "STREAM_NER_TOPICS__RAW_POSTS": self.topics.raw,
                "STREAM_NER_TOPICS__ENTITIES": self.topics.entities,
                "STREAM_NER_TOPICS__DLQ": self.topics.dlq,
                "STREAM_NER_WORKER__GROUP_ID": self.topics.group,
                "STREAM_NER_WORKER__METRICS_PORT": str(port),
                "STREAM_NER_KAFKA__CLIENT_ID": name,
                "STREAM_NER_LOG_LEVEL": "WARNING",
            }
        )
        if self.static:
            env["STREAM_NER_WORKER__GROUP_INSTANCE_ID"] = f"{self.topics.group}-{name}"
        log_path = self.log_dir / f"{name}.log"
        command = [sys.executable, "-m", "stream_ner", "worker", "--name", name]
        if self.config.peer:
            command = [sys.executable, "-m", "loadtest.peers", self.config.peer]
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                command,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return WorkerProcess(name, proc, port, log_path)


@dataclass
class AggregatorProcess:
    """One ``stream-ner aggregate`` subprocess on a rig's ``entities`` topic, with its own Redis."""

    proc: subprocess.Popen[bytes]
    group: str
    metrics_port: int
    log_path: Path
    redis: object  # the private ``localstack`` Redis this process writes to

    @classmethod
    def start(cls, bootstrap: str, topics: Topics, log_dir: Path) -> AggregatorProcess:
        """Start the aggregator (default windows) and a private Redis; ready once it has partitions."""
        from confluent_kafka.admin import AdminClient, NewTopic

        from stream_ner import localstack

        output = f"{topics.entities}.aggregates"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(output, OUTPUT_PARTITIONS, 1)])[output].result(30)
        wait_for_leaders(admin, [output])
        redis = localstack.start_redis()
        group = f"{topics.group}-aggregate"
        port = free_port()
        env = os.environ | {
            "STREAM_NER_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "STREAM_NER_TOPICS__ENTITIES": topics.entities,
            "STREAM_NER_TOPICS__BRAND_AGGREGATES": output,
            "STREAM_NER_REDIS__URL": redis.url,
            "STREAM_NER_AGGREGATE__APP_ID": group,
            "STREAM_NER_AGGREGATE__REPLICATION_FACTOR": "1",
            "STREAM_NER_AGGREGATE__METRICS_PORT": str(port),
            "STREAM_NER_LOG_LEVEL": "WARNING",
        }
        log_path = log_dir / "aggregate.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "stream_ner", "aggregate"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        started = cls(proc, group, port, log_path, redis)
        deadline = time.monotonic() + 120
        while not started.metrics():
            started.check_alive()
            if time.monotonic() > deadline:
                started.stop()
                raise RuntimeError(f"the aggregator did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        return started

    def metrics(self) -> dict[str, float]:
        """Its /metrics, or {} while it cannot be read."""
        try:
            return scrape(self.metrics_port, timeout=2.0)
        except OSError:
            return {}

    def check_alive(self) -> None:
        """Raise with the end of its log if it exited."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"the aggregator exited:\n{self.log_path.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s; stop its Redis."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.redis.stop()  # type: ignore[attr-defined]
