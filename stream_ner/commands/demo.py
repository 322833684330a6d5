"""``stream-ner demo``: the whole pipeline on this machine, in one command.

Starts a local Kafka broker and Redis (``stream_ner.localstack``), creates the topics, starts two
inference workers, the aggregator and the dashboard as child processes (each with its own free port; the
dashboard on ``dashboard.port`` when that is free), prints the dashboard's URL, streams the shipped sample
posts into ``raw-posts`` and prints entity events as they arrive, with the brand leaderboard from Redis
now and then.

The demo watches its children: when one exits, it says which, prints the end of its log and stops
everything with exit code 1. Ctrl-C, SIGTERM, a closed terminal (SIGHUP) or the end of ``--duration``
stops every process it started, in reverse order; the exit code is 0 when every child ran throughout and
at least one event arrived. Children, Kafka and Redis run in process groups of their own, so a Ctrl-C
reaches the demo alone and the order of the stop is the demo's.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_LOG_TAIL_LINES = 20


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` command."""
    parser = subparsers.add_parser(
        "demo", help="run everything locally: Kafka, Redis, workers, aggregator, posts"
    )
    parser.add_argument("--workers", type=int, default=2, help="inference worker processes")
    parser.add_argument("--rate", type=float, default=10.0, help="sample posts per second")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds; 0: Ctrl-C")
    parser.add_argument("--no-aggregate", action="store_true", help="do not start the aggregator")
    parser.add_argument("--no-dashboard", action="store_true", help="do not start the dashboard")
    parser.add_argument("--leaderboard-every", type=float, default=20.0, help="seconds between leaderboards")
    parser.set_defaults(handler=run)


@dataclass(frozen=True)
class Child:
    """A process the demo started: its name, the process, and the file its output goes to."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of its log."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class ChildExited(Exception):
    """A child of the demo is no longer running."""

    def __init__(self, child: Child) -> None:
        super().__init__(f"{child.name} exited with code {child.proc.returncode}")
        self.child = child


def run(args: argparse.Namespace) -> int:
    """Bring the stack up, stream, tear it all down; 1 when a child died or no event arrived."""
    from rich.console import Console
    from rich.markup import escape

    from stream_ner import localstack
    from stream_ner.errors import MissingExtra
    from stream_ner.extras import hint, missing

    if not args.no_aggregate and (absent := missing("aggregate")):
        raise MissingExtra(
            f"the demo's aggregator needs the 'aggregate' extra ({', '.join(absent)} not installed): "
            f"{hint('aggregate')}, or run `stream-ner demo --no-aggregate`"
        )
    if not args.no_dashboard and (absent := missing("dashboard")):
        raise MissingExtra(
            f"the demo's dashboard needs the 'dashboard' extra ({', '.join(absent)} not installed): "
            f"{hint('dashboard')}, or run `stream-ner demo --no-dashboard`"
        )
    console = Console()
    run_dir = Path(tempfile.mkdtemp(prefix="stream-ner-demo-"))
    children: list[Child] = []
    with ExitStack() as stack:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGINT too: it may come in ignored
            stack.callback(signal.signal, signum, signal.signal(signum, _interrupt))
        console.print("[bold]starting Kafka[/] (first run fetches the broker's jars from Maven Central)")
        kafka = stack.enter_context(localstack.start_kafka())
        console.print(f"  Kafka at {kafka.bootstrap}")
        redis = stack.enter_context(localstack.start_redis())
        console.print(f"  Redis at {redis.url}")
        env = os.environ | {
            "STREAM_NER_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap,
            "STREAM_NER_REDIS__URL": redis.url,
            "STREAM_NER_TOPICS__REPLICATION_FACTOR": "1",
            "STREAM_NER_MODEL__INTRA_OP_THREADS": str(max(1, (os.cpu_count() or 2) // max(1, args.workers))),
        }
        os.environ.update(env)  # this process reads the same settings (topics, tail, leaderboard)
        topics = _child(stack, "topics", ["topics", "apply"], env, run_dir)
        if topics.proc.wait() != 0:
            return _died(console, ChildExited(topics))
        console.print(f"[bold]topics applied[/]; logs of every process in {run_dir}")
        ports = []
        for i in range(args.workers):
            port = localstack.free_port()
            ports.append(str(port))
            name = f"worker-{i + 1}"
            worker_env = env | {"STREAM_NER_WORKER__METRICS_PORT": str(port)}
            children.append(_child(stack, name, ["worker", "--name", name], worker_env, run_dir))
        console.print(f"[bold]{args.workers} workers[/] starting (metrics on ports {', '.join(ports)})")
        if not args.no_aggregate:
            port = localstack.free_port()
            aggregate_env = env | {"STREAM_NER_AGGREGATE__METRICS_PORT": str(port)}
            children.append(_child(stack, "aggregator", ["aggregate"], aggregate_env, run_dir))
            console.print(f"[bold]aggregator[/] starting (metrics on port {port})")
        if not args.no_dashboard:
            children.append(_dashboard(stack, env, run_dir, console))
        produce = ["produce", "samples", "--loop", "--stamp", "--rate", str(args.rate)]
        children.append(_child(stack, "producer", produce, env, run_dir))
        console.print(f"[bold]streaming sample posts[/] at {args.rate:g}/s; Ctrl-C stops everything\n")
        try:
            events, seconds = _follow(console, args, children, show_leaderboard=not args.no_aggregate)
        except ChildExited as exited:
            return _died(console, exited)
        names = ", ".join(child.name for child in children)
        console.print(
            f"\n[bold]{events} entity events[/] in {seconds:.0f} s; ran throughout: {escape(names)}"
        )
        console.print("[bold]stopping[/] workers, aggregator, dashboard, producer, Redis and Kafka")
        if not events:
            console.print(f"[bold red]no entity event arrived[/]; the logs are in {run_dir}")
            return 1
    return 0


def _child(stack: ExitStack, name: str, args: list[str], env: dict[str, str], run_dir: Path) -> Child:
    """Start ``stream-ner ARGS`` with output to ``RUN_DIR/NAME.log``; stopped (SIGTERM, then kill) on exit."""
    log = run_dir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream_ner", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            process_group=0,  # a Ctrl-C is the demo's to pass on, in order
        )

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    stack.callback(stop)
    return Child(name, proc, log)


def _dashboard(stack: ExitStack, env: dict[str, str], run_dir: Path, console: Any) -> Child:
    """Start the dashboard on ``dashboard.port`` (a free port when that one is taken); print its URL."""
    import socket

    from stream_ner import localstack
    from stream_ner.commands.dashboard import url
    from stream_ner.settings import load_settings

    dashboard = load_settings().dashboard
    port = dashboard.port
    with socket.socket() as probe:
        try:
            probe.bind((dashboard.host, port))
        except OSError:
            port = localstack.free_port()
    child = _child(stack, "dashboard", ["dashboard", "--port", str(port)], env, run_dir)
    token = " (add ?token=<STREAM_NER_DASHBOARD__TOKEN>)" if dashboard.token else ""
    console.print(f"[bold]dashboard[/] at [bold cyan]{url(dashboard.host, port)}[/]{token}")
    return child


def _interrupt(signum: int, frame: object) -> None:
    """Ctrl-C, SIGTERM and SIGHUP stop the demo in order.

    Also when the demo started with SIGINT ignored, as a shell starts a background job.
    """
    raise KeyboardInterrupt


def _died(console: Any, exited: ChildExited) -> int:
    """Say which child exited and show the end of its log; the demo's exit code."""
    from rich.markup import escape

    child = exited.child
    console.print(f"\n[bold red]{escape(str(exited))}[/]; the end of its log ({child.log}):")
    console.print(escape(child.tail()), highlight=False)
    console.print("[bold]stopping[/] everything else")
    return 1


def _check(children: list[Child]) -> None:
    """Raise ``ChildExited`` for the first child that is no longer running."""
    for child in children:
        if child.proc.poll() is not None:
            raise ChildExited(child)


def _follow(
    console: Any, args: argparse.Namespace, children: list[Child], show_leaderboard: bool
) -> tuple[int, float]:
    """Print entity events until Ctrl-C or the duration ends, watching the children; (events, seconds)."""
    import json
    import uuid

    from confluent_kafka import Consumer

    from stream_ner.commands.tail import render
    from stream_ner.kafka import client_config
    from stream_ner.settings import load_settings

    settings = load_settings()
    consumer = Consumer(
        client_config(settings.kafka)
        | {"group.id": f"stream-ner-demo-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([settings.topics.entities])
    started = next_board = time.monotonic()
    next_board += args.leaderboard_every
    events = 0
    try:
        while not args.duration or time.monotonic() - started < args.duration:
            _check(children)
            message = consumer.poll(0.5)
            if message is not None and not message.error() and (value := message.value()) is not None:
                events += 1
                console.print(render(json.loads(value)))
            if show_leaderboard and time.monotonic() >= next_board:
                next_board += args.leaderboard_every
                _leaderboard(console, settings)
        _check(children)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return events, time.monotonic() - started


def _leaderboard(console: Any, settings: Any) -> None:
    from stream_ner.commands.brands import print_top

    try:
        print_top(settings, window="1m", at=None, n=10, console=console)
    except Exception as exc:  # noqa: BLE001 - the demo keeps streaming when the board is not ready yet
        console.print(f"[dim]leaderboard not available yet: {exc}[/]")
