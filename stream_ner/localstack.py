"""A local Kafka cluster and Redis on 127.0.0.1, for tests, ``stream-ner demo`` and ``stream-ner local``.

A thin layer over the scripts in ``deploy/local`` (``kafka/kafka-local.sh``, ``redis-local.sh``), which
do the work: fetch the broker's jars from Maven Central once, start the servers in the background in a
temp dir, wait for readiness, stop them by PID. This module finds the scripts, runs them and hands back
a :class:`LocalService`. Kafka is ready when every node's log says "Kafka Server started" (the script)
and an AdminClient sees every broker in the cluster metadata (here); Redis when it answers PING (or, over
TLS, logs that it accepts connections).

Kafka runs one node by default, or ``brokers=3`` KRaft nodes (each a broker and a controller): one node
can be stopped (``kill=True``: SIGKILL) and started again on its data (:meth:`LocalService.stop_node`,
:meth:`LocalService.start_node`). Secured variants, for tests of TLS and passwords: Kafka with a
SASL_SSL client listener (SCRAM, the broker certificate from a PEM file; users added with
:meth:`LocalService.add_scram_user`) and Redis over TLS only, with an ACL file.

Instances:

- ``name=None`` (tests, the demo): a private instance on free ports, stopped by :meth:`LocalService.stop`
  or, should this process die first, by the script's watchdog.
- ``name="local"`` (``stream-ner local up``): a long-lived instance that outlives this process; find it
  again with :func:`find` and stop it with :meth:`LocalService.stop`.

Requirements: bash, Java 17+ (and Maven for the first jar fetch), ``redis-server`` on PATH;
``deploy/local/install-deps.sh`` installs what it can.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from stream_ner.errors import LocalStackError

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

Kind = Literal["kafka", "redis"]

_SCRIPTS: dict[Kind, str] = {"kafka": "kafka/kafka-local.sh", "redis": "redis-local.sh"}
_Done = subprocess.CompletedProcess[str]
_PORT_RETRIES = 3  # starts of a private instance on a free port, see _start


@dataclass(frozen=True)
class KafkaNode:
    """One node (broker and controller) of a local Kafka cluster."""

    node_id: int  # 1..brokers, the broker id in metadata
    address: str  # client listener, 127.0.0.1:PORT
    pid: int  # the last one started; the node may have been stopped since
    log: Path


@dataclass(frozen=True)
class LocalService:
    """One running local server (or Kafka cluster), as recorded in its state file."""

    kind: Kind
    address: str  # 127.0.0.1:PORT (Kafka: node 1's client listener)
    pid: int  # Kafka: node 1's
    run_dir: Path
    log: Path  # Kafka: node 1's
    state_file: Path
    servers: str = ""  # Kafka: every node's client listener, comma-separated
    internal_servers: str = ""  # Kafka: plaintext listeners (the client ones unless secured)
    nodes: tuple[KafkaNode, ...] = ()
    tls: bool = False  # Kafka: SASL_SSL client listener; Redis: TLS only

    @property
    def port(self) -> int:
        """TCP port on 127.0.0.1."""
        return int(self.address.rpartition(":")[2])

    @property
    def bootstrap(self) -> str:
        """``bootstrap.servers`` value for Kafka clients (every node)."""
        return self.servers or self.address

    @property
    def internal_bootstrap(self) -> str:
        """Plaintext ``bootstrap.servers`` on loopback, for test set-up (e.g. users) of a secured cluster."""
        return self.internal_servers or self.bootstrap

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0`` (``rediss://``: TLS) for Redis; the bootstrap servers for Kafka."""
        if self.kind == "kafka":
            return self.bootstrap
        return f"{'rediss' if self.tls else 'redis'}://{self.address}/0"

    def running(self) -> bool:
        """Whether the recorded process is still this server."""
        return _script(self.kind, "status", self._env()).returncode == 0

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its temp dir; a no-op when already stopped."""
        done = _script(self.kind, "stop", self._env())
        if done.returncode != 0:
            raise LocalStackError(f"stopping {self.kind} failed:\n{done.stderr.strip()}")

    def stop_node(self, node_id: int, *, kill: bool = False) -> None:
        """Stop one Kafka node keeping its data: SIGTERM (clean) or, with ``kill``, SIGKILL."""
        env = self._env() | {"KAFKA_NODE": str(node_id), "KAFKA_SIGNAL": "KILL" if kill else "TERM"}
        done = _script(self.kind, "stop-node", env)
        if done.returncode != 0:
            raise LocalStackError(f"stopping kafka node {node_id} failed: {done.stderr.strip()}")

    def start_node(self, node_id: int) -> LocalService:
        """Start a stopped Kafka node again on its data; returns the service as now recorded (new PID)."""
        done = _script(self.kind, "start-node", self._env() | {"KAFKA_NODE": str(node_id)})
        if done.returncode != 0:
            raise LocalStackError(f"kafka node {node_id} did not start again: {done.stderr.strip()}")
        return _read_state(self.kind, self.state_file)

    def add_scram_user(self, username: str, password: str, mechanism: str = "SCRAM-SHA-512") -> None:
        """Create or update a SCRAM user (through the plaintext listener); returns once it is stored."""
        from confluent_kafka.admin import (
            AdminClient,
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        admin = AdminClient({"bootstrap.servers": self.internal_bootstrap})
        info = ScramCredentialInfo(ScramMechanism[mechanism.replace("-", "_")], 4096)
        upsert = UserScramCredentialUpsertion(username, info, password.encode())
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(timeout=30)

    def __enter__(self) -> LocalService:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _env(self) -> dict[str, str]:
        return {f"{self.kind.upper()}_STATE_FILE": str(self.state_file)}


def deploy_dir() -> Path:
    """``deploy/local``: the repository's copy (checkout, editable install) or the one packaged in a wheel."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "deploy" / "local", package / "_deploy_local"):
        if (candidate / _SCRIPTS["kafka"]).is_file():
            return candidate
    raise LocalStackError(f"deploy/local scripts not found next to {package}")


def state_dir() -> Path:
    """Where instance state files live: ``deploy/local/.run`` when writable, else the user's cache dir."""
    repo = deploy_dir()
    if os.access(repo, os.W_OK):
        return repo / ".run"
    return _user_cache() / "run"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (another process may still take it before you bind)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_kafka(
    port: int | None = None,
    *,
    name: str | None = None,
    timeout: float = 180.0,
    brokers: int = 1,
    tls_pem: Path | None = None,
) -> LocalService:
    """Start a KRaft cluster of ``brokers`` nodes on 127.0.0.1 and wait until every broker serves.

    ``port``: node 1's client port (node N gets ``port + N - 1``); ``None``: free ports. With ``tls_pem``
    (the brokers' unencrypted private key and certificate chain in one PEM file) the client listeners
    speak SASL_SSL (SCRAM-SHA-512 and -256) and a plaintext one on loopback serves
    :attr:`LocalService.internal_bootstrap`. The first call on a machine fetches the broker's jars from
    Maven Central (a few seconds; cached). Raises :class:`LocalStackError` with the last log lines when
    the cluster does not come up.
    """
    if brokers < 1:
        raise LocalStackError(f"a Kafka cluster needs at least one broker, not {brokers}")
    extra = {"KAFKA_BROKERS": str(brokers), "KAFKA_TLS_PEM": str(tls_pem) if tls_pem else ""}
    service = _start("kafka", port, name, timeout, extra)
    try:
        _wait_for_broker(service.internal_bootstrap, brokers, timeout=60.0)
    except LocalStackError:
        service.stop()
        raise
    return service


def start_redis(
    port: int | None = None,
    *,
    name: str | None = None,
    timeout: float = 20.0,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    acl_file: Path | None = None,
) -> LocalService:
    """Start ``redis-server`` on 127.0.0.1 (``port=None``: a free port) without persistence; wait for PING.

    With ``tls_cert`` and ``tls_key`` (PEM) the port speaks TLS only (no client certificates asked for);
    with ``acl_file`` the users and passwords come from that file (``user NAME on >PASSWORD ...``).
    """
    if (tls_cert is None) != (tls_key is None):
        raise LocalStackError("a Redis TLS port needs both tls_cert and tls_key")
    extra = {
        "REDIS_TLS_CERT": str(tls_cert or ""),
        "REDIS_TLS_KEY": str(tls_key or ""),
        "REDIS_ACLFILE": str(acl_file or ""),
    }
    return _start("redis", port, name, timeout, extra)


def fetch_kafka() -> Path:
    """Download the broker's jars into the cache if they are not there yet; returns the jar directory."""
    done = _with_progress("fetching Kafka jars from Maven Central", lambda: _script("kafka", "fetch", {}))
    if done.returncode != 0:
        raise LocalStackError(done.stderr.strip())
    return Path(done.stdout.strip())


def find(kind: Kind, name: str) -> LocalService | None:
    """The named instance if it is running, else ``None``."""
    service = recorded(kind, name)
    return service if service is not None and service.running() else None


def recorded(kind: Kind, name: str) -> LocalService | None:
    """The named instance as last recorded, running or not; ``None`` when there is none.

    A Kafka whose brokers were all stopped with ``stop_node`` is recorded but not running: its data
    waits for ``start_node``.
    """
    state_file = state_dir() / f"{kind}-{name}.env"
    return _read_state(kind, state_file) if state_file.is_file() else None


def _start(
    kind: Kind, port: int | None, name: str | None, timeout: float, extra: dict[str, str]
) -> LocalService:
    upper = kind.upper()
    instance = name or f"p{os.getpid()}-{uuid.uuid4().hex[:8]}"
    env = extra | {
        "STREAM_NER_LOCAL_STATE_DIR": str(state_dir()),
        f"{upper}_INSTANCE": instance,
        f"{upper}_PORT": "" if port is None else str(port),
        f"{upper}_START_TIMEOUT": str(int(timeout)),
    }
    if name is None:
        env[f"{upper}_OWNER_PID"] = str(os.getpid())
    if kind == "kafka" and not os.access(deploy_dir() / "kafka", os.W_OK):
        env["KAFKA_CACHE_DIR"] = str(_user_cache() / "kafka")
    for attempt in range(1, _PORT_RETRIES + 1):
        done = _with_progress(f"starting {kind}", lambda: _script(kind, "start", env))
        if done.returncode == 0:
            return _read_state(kind, state_dir() / f"{kind}-{instance}.env")
        # A private instance on a free port leaves nothing behind when its start fails (the port was
        # taken meanwhile, or the broker died during start-up on a loaded machine): try afresh.
        if port is not None or attempt == _PORT_RETRIES:
            raise LocalStackError(f"{kind} did not start: {done.stderr.strip()}")
    raise AssertionError("unreachable")


def _script(kind: Kind, command: str, env: dict[str, str]) -> _Done:
    """Run a deploy script in a session of its own.

    A Ctrl-C meant for the caller (the demo, a test run) then never reaches the servers and watchdogs the
    script starts: the caller stops them, in order, after its own clients.
    """
    script = deploy_dir() / _SCRIPTS[kind]
    return subprocess.run(
        ["bash", str(script), command],
        env=os.environ | env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        start_new_session=True,
    )


def _read_state(kind: Kind, state_file: Path) -> LocalService:
    """Parse the ``KEY=VALUE`` state file a script wrote at start."""
    try:
        text = state_file.read_text()
    except OSError as exc:
        raise LocalStackError(f"no state file for {kind}: {exc}") from exc
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    upper = kind.upper()
    nodes = tuple(
        KafkaNode(
            node_id=i,
            address=values[f"KAFKA_ADDRESS_{i}"],
            pid=int(values[f"KAFKA_PID_{i}"]),
            log=Path(values[f"KAFKA_LOG_{i}"]),
        )
        for i in range(1, int(values.get("KAFKA_NODES", "0")) + 1)
    )
    return LocalService(
        kind=kind,
        address=values[f"{upper}_ADDRESS"],
        pid=int(values[f"{upper}_PID"]),
        run_dir=Path(values[f"{upper}_RUN"]),
        log=Path(values[f"{upper}_LOG"]),
        state_file=state_file,
        servers=values.get("KAFKA_BOOTSTRAP", ""),
        internal_servers=values.get("KAFKA_INTERNAL_BOOTSTRAP", ""),
        nodes=nodes,
        tls=values.get(f"{upper}_SECURE", values.get(f"{upper}_TLS", "0")) == "1",
    )


def _wait_for_broker(bootstrap: str, brokers: int, timeout: float) -> None:
    """Readiness beyond the log lines: every broker is listed in the metadata an AdminClient gets.

    Then the coordinators clients ask for first must answer (``_wait_for_coordinators``).
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    deadline, last_error = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        try:
            listed = len(admin.list_topics(timeout=5).brokers)
        except KafkaException as exc:
            last_error = str(exc)
        else:
            if listed >= brokers:
                _wait_for_coordinators(bootstrap, admin, deadline)
                return
            last_error = f"{listed} of {brokers} brokers listed"
        time.sleep(0.2)
    raise LocalStackError(f"Kafka at {bootstrap} was not ready within {timeout:.0f}s: {last_error}")


def _wait_for_coordinators(bootstrap: str, admin: AdminClient, deadline: float) -> None:
    """Until an idempotent producer gets its producer id and a consumer group its coordinator.

    A fresh cluster answers both with "coordinator load in progress" for a second or so. Clients retry,
    but say so (librdkafka a warning per producer, aiokafka an error), which on a first run reads like a
    fault; the cluster is handed over once neither would. ``LocalStackError`` past ``deadline``.
    """
    from confluent_kafka import KafkaException, Producer

    state = {"idempotence": ""}

    def on_stats(raw: str) -> None:
        state["idempotence"] = json.loads(raw).get("eos", {}).get("idemp_state", "")

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "statistics.interval.ms": 100,
            "stats_cb": on_stats,
            "log_level": 0,
        }
    )
    while state["idempotence"] != "Assigned":
        if time.monotonic() > deadline:
            raise LocalStackError(f"Kafka at {bootstrap} assigned no producer id in time")
        producer.poll(0.1)
    # a group nobody joins: describing it needs its coordinator, and leaves nothing behind
    group = f"stream-ner-readiness-{uuid.uuid4().hex[:8]}"
    while True:
        try:
            admin.describe_consumer_groups([group], request_timeout=5)[group].result()
            return
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise LocalStackError(
                    f"Kafka at {bootstrap} found no group coordinator in time: {exc}"
                ) from exc
            time.sleep(0.2)


def _with_progress(description: str, work: Callable[[], _Done]) -> _Done:
    """Run ``work()`` under a rich spinner with elapsed time when stderr is a terminal."""
    if not sys.stderr.isatty():
        return work()
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        progress.add_task(description, total=None)
        return work()


def _user_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stream-ner" / "local"
