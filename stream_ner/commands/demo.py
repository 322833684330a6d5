"""``stream-ner demo``: the whole pipeline on this machine, in one command.

Starts a local Kafka broker and Redis (``stream_ner.localstack``), creates the topics, starts two
inference workers and the aggregator as child processes, streams the shipped sample posts into
``raw-posts`` and prints entity events as they arrive, with the brand leaderboard from Redis now and
then. Ctrl-C (or ``--duration``) stops every process it started, in reverse order.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` command."""
    parser = subparsers.add_parser(
        "demo", help="run everything locally: Kafka, Redis, workers, aggregator, posts"
    )
    parser.add_argument("--workers", type=int, default=2, help="inference worker processes")
    parser.add_argument("--rate", type=float, default=10.0, help="sample posts per second")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds; 0: Ctrl-C")
    parser.add_argument("--no-aggregate", action="store_true", help="do not start the aggregator")
    parser.add_argument("--leaderboard-every", type=float, default=20.0, help="seconds between leaderboards")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Bring the stack up, stream, tear it all down."""
    from rich.console import Console

    from stream_ner import localstack

    console = Console()
    run_dir = Path(tempfile.mkdtemp(prefix="stream-ner-demo-"))
    with ExitStack() as stack:
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
        _child(
            stack, [sys.executable, "-m", "stream_ner", "topics", "apply"], env, run_dir / "topics.log"
        ).wait()
        console.print(f"[bold]topics applied[/]; logs of every process in {run_dir}")
        for i in range(args.workers):
            cmd = [sys.executable, "-m", "stream_ner", "worker", "--name", f"worker-{i + 1}"]
            _child(
                stack,
                cmd,
                env | {"STREAM_NER_WORKER__METRICS_PORT": str(9401 + i)},
                run_dir / f"worker-{i + 1}.log",
            )
        console.print(
            f"[bold]{args.workers} workers[/] started (metrics on ports 9401..{9400 + args.workers})"
        )
        if not args.no_aggregate:
            _child(stack, [sys.executable, "-m", "stream_ner", "aggregate"], env, run_dir / "aggregate.log")
            console.print("[bold]aggregator[/] started")
        produce = [
            sys.executable,
            "-m",
            "stream_ner",
            "produce",
            "samples",
            "--loop",
            "--stamp",
            "--rate",
            str(args.rate),
        ]
        _child(stack, produce, env, run_dir / "produce.log")
        console.print(f"[bold]streaming sample posts[/] at {args.rate:g}/s; Ctrl-C stops everything\n")
        _follow(console, args, show_leaderboard=not args.no_aggregate)
        console.print("\n[bold]stopping[/] workers, aggregator, producer, Redis and Kafka")
    return 0


def _child(stack: ExitStack, cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start a child process whose output goes to ``log``; it is stopped (SIGTERM, then kill) on exit."""
    proc = subprocess.Popen(
        cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
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
    return proc


def _follow(console, args: argparse.Namespace, show_leaderboard: bool) -> None:  # type: ignore[no-untyped-def]
    """Print entity events until Ctrl-C or the duration ends; a leaderboard now and then."""
    import json
    import uuid

    from confluent_kafka import Consumer

    from stream_ner.commands.tail import render
    from stream_ner.settings import load_settings

    settings = load_settings()
    consumer = Consumer(
        settings.kafka.librdkafka()
        | {"group.id": f"stream-ner-demo-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([settings.topics.entities])
    started = next_board = time.monotonic()
    next_board += args.leaderboard_every
    try:
        while not args.duration or time.monotonic() - started < args.duration:
            message = consumer.poll(0.5)
            if message is not None and not message.error() and (value := message.value()) is not None:
                console.print(render(json.loads(value)))
            if show_leaderboard and time.monotonic() >= next_board:
                next_board += args.leaderboard_every
                _leaderboard(console, settings)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


def _leaderboard(console, settings) -> None:  # type: ignore[no-untyped-def]
    from stream_ner.commands.brands import print_top

    try:
        print_top(settings, window="1m", at=None, n=10, console=console)
    except Exception as exc:  # noqa: BLE001 - the demo keeps streaming when the board is not ready yet
        console.print(f"[dim]leaderboard not available yet: {exc}[/]")
