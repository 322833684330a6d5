"""A local Kafka broker and Redis on 127.0.0.1, for tests, ``stream-ner demo`` and ``stream-ner local``.

A thin layer over the scripts in ``deploy/local`` (``kafka/kafka-local.sh``, ``redis-local.sh``), which
do the work: fetch the broker's jars from Maven Central once, start the server in the background in a
temp dir, wait for readiness, stop it by PID. This module finds the scripts, runs them and hands back
a :class:`LocalService`. Kafka is ready when its log says "Kafka Server started" (the script) and an
AdminClient sees the broker in the cluster metadata (here); Redis when it answers PING.

Instances:

- ``name=None`` (tests, the demo): a private instance on free ports, stopped by :meth:`LocalService.stop`
  or, should this process die first, by the script's watchdog.
- ``name="local"`` (``stream-ner local up``): a long-lived instance that outlives this process; find it
  again with :func:`find` and stop it with :meth:`LocalService.stop`.

Requirements: bash, Java 17+ (and Maven for the first jar fetch), ``redis-server`` on PATH;
``deploy/local/install-deps.sh`` installs what it can.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stream_ner.errors import LocalStackError

Kind = Literal["kafka", "redis"]

_SCRIPTS: dict[Kind, str] = {"kafka": "kafka/kafka-local.sh", "redis": "redis-local.sh"}
_Done = subprocess.CompletedProcess[str]
_PORT_RETRIES = 3  # starts of a private instance on a free port, see _start


@dataclass(frozen=True)
class LocalService:
    """One running local server, as recorded in its state file."""

    kind: Kind
    address: str  # 127.0.0.1:PORT
    pid: int
    run_dir: Path
    log: Path
    state_file: Path

    @property
    def port(self) -> int:
        """TCP port on 127.0.0.1."""
        return int(self.address.rpartition(":")[2])

    @property
    def bootstrap(self) -> str:
        """``bootstrap.servers`` value for Kafka clients."""
        return self.address

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0`` for Redis; the bootstrap address for Kafka."""
        return f"redis://{self.address}/0" if self.kind == "redis" else self.address

    def running(self) -> bool:
        """Whether the recorded process is still this server."""
        return _script(self.kind, "status", self._env()).returncode == 0

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its temp dir; a no-op when already stopped."""
        done = _script(self.kind, "stop", self._env())
        if done.returncode != 0:
            raise LocalStackError(f"stopping {self.kind} failed:\n{done.stderr.strip()}")

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


def start_kafka(port: int | None = None, *, name: str | None = None, timeout: float = 180.0) -> LocalService:
    """Start a single-node KRaft broker on 127.0.0.1 (``port=None``: a free port) and wait until it serves.

    The first call on a machine fetches the broker's jars from Maven Central (a few seconds; cached).
    Raises :class:`LocalStackError` with the broker's last log lines when it does not come up.
    """
    service = _start("kafka", port, name, timeout)
    try:
        _wait_for_broker(service.bootstrap, timeout=60.0)
    except LocalStackError:
        service.stop()
        raise
    return service


def start_redis(port: int | None = None, *, name: str | None = None, timeout: float = 20.0) -> LocalService:
    """Start ``redis-server`` on 127.0.0.1 (``port=None``: a free port) without persistence; wait for PING."""
    return _start("redis", port, name, timeout)


def fetch_kafka() -> Path:
    """Download the broker's jars into the cache if they are not there yet; returns the jar directory."""
    done = _with_progress("fetching Kafka jars from Maven Central", lambda: _script("kafka", "fetch", {}))
    if done.returncode != 0:
        raise LocalStackError(done.stderr.strip())
    return Path(done.stdout.strip())


def find(kind: Kind, name: str) -> LocalService | None:
    """The named instance if it is running, else ``None``."""
    state_file = state_dir() / f"{kind}-{name}.env"
    if not state_file.is_file():
        return None
    service = _read_state(kind, state_file)
    return service if service.running() else None


def _start(kind: Kind, port: int | None, name: str | None, timeout: float) -> LocalService:
    upper = kind.upper()
    instance = name or f"p{os.getpid()}-{uuid.uuid4().hex[:8]}"
    env = {
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
    script = deploy_dir() / _SCRIPTS[kind]
    return subprocess.run(
        ["bash", str(script), command],
        env=os.environ | env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )


def _read_state(kind: Kind, state_file: Path) -> LocalService:
    """Parse the ``KEY=VALUE`` state file a script wrote at start."""
    try:
        text = state_file.read_text()
    except OSError as exc:
        raise LocalStackError(f"no state file for {kind}: {exc}") from exc
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    upper = kind.upper()
    return LocalService(
        kind=kind,
        address=values[f"{upper}_ADDRESS"],
        pid=int(values[f"{upper}_PID"]),
        run_dir=Path(values[f"{upper}_RUN"]),
        log=Path(values[f"{upper}_LOG"]),
        state_file=state_file,
    )


def _wait_for_broker(bootstrap: str, timeout: float) -> None:
    """Readiness beyond the log line: the broker is listed in the metadata an AdminClient gets."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline, last_error = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        try:
            if admin.list_topics(timeout=5).brokers:
                return
        except KafkaException as exc:
            last_error = str(exc)
        time.sleep(0.2)
    raise LocalStackError(f"Kafka at {bootstrap} answered no metadata within {timeout:.0f}s {last_error}")


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
