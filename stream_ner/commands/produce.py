"""``stream-ner produce``: publish posts from a JSONL file or stdin to ``raw-posts``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``produce`` command."""
    parser = subparsers.add_parser("produce", help="publish posts (JSONL, one per line) to raw-posts")
    parser.add_argument(
        "input", nargs="?", default="-", help="JSONL file, '-' for stdin, 'samples' for the shipped ones"
    )
    parser.add_argument("--topic", default=None, help="target topic (default: the raw-posts setting)")
    parser.add_argument("--rate", type=float, default=0.0, help="posts per second; 0: as fast as possible")
    parser.add_argument("--loop", action="store_true", help="repeat the input; ids get a '-<round>' suffix")
    parser.add_argument("--count", type=int, default=0, help="stop after this many posts; 0: no limit")
    parser.add_argument("--stamp", action="store_true", help="set created_at to the send time")
    parser.set_defaults(handler=run)


def sample_posts_path() -> Path:
    """The shipped sample posts."""
    return Path(__file__).resolve().parent.parent / "samples" / "posts.jsonl"


def records(lines: list[str], loop: bool, stamp: bool) -> Iterator[tuple[bytes | None, bytes]]:
    """(key, value) per line; lines that are not JSON objects are sent as they are, with no key."""
    rounds = 0
    while True:
        for line in lines:
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                yield None, line.encode()
                continue
            if not isinstance(doc, dict):
                yield None, line.encode()
                continue
            if rounds and "id" in doc:
                doc["id"] = f"{doc['id']}-{rounds}"
            if stamp:
                doc["created_at"] = datetime.now(UTC).isoformat()
            key = str(doc["id"]).encode() if "id" in doc else None
            yield key, json.dumps(doc, ensure_ascii=False).encode()
        rounds += 1
        if not loop or not lines:
            return


def run(args: argparse.Namespace) -> int:
    """Publish, rate-limited, and wait for every record to be acknowledged."""
    from confluent_kafka import Producer

    from stream_ner.errors import ConfigError
    from stream_ner.kafka import client_config, ensure_reachable
    from stream_ner.settings import load_settings

    settings = load_settings()
    topic = args.topic or settings.topics.raw_posts
    if args.input == "samples":
        source = sample_posts_path().read_text(encoding="utf-8")
    elif args.input == "-":
        source = sys.stdin.read()
    else:
        try:
            source = Path(args.input).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {args.input}: {exc}") from exc
    lines = [line for line in source.splitlines() if line.strip()]
    ensure_reachable(settings.kafka)
    producer = Producer(client_config(settings.kafka) | {"enable.idempotence": True, "linger.ms": 5})
    failures: list[str] = []

    def delivered(error, message):  # type: ignore[no-untyped-def]
        if error is not None:
            failures.append(str(error))

    sent, started = 0, time.monotonic()
    try:
        for key, value in records(lines, args.loop, args.stamp):
            if args.count and sent >= args.count:
                break
            if args.rate > 0:
                delay = started + sent / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            producer.produce(topic, value=value, key=key, on_delivery=delivered)
            producer.poll(0)
            sent += 1
    except KeyboardInterrupt:
        pass
    producer.flush(30)
    print(f"sent {sent} records to {topic} ({len(failures)} failed)", file=sys.stderr)
    return 1 if failures else 0
