"""``stream-ner produce``: publish posts from a JSONL file or stdin to ``raw-posts``.

Each line is one record. A record the topic cannot take (larger than its ``max.message.bytes``) or that
the broker refuses is reported on stderr with its line number and why, and the rest still go; the exit
code is then 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

DEFAULT_MAX_MESSAGE_BYTES = 1_048_588  # the broker's message.max.bytes default


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


def numbered(source: str) -> list[tuple[int, str]]:
    """(line number from 1, line) for every line that is not blank."""
    return [(number, line) for number, line in enumerate(source.splitlines(), start=1) if line.strip()]


def records(
    lines: list[tuple[int, str]], loop: bool, stamp: bool
) -> Iterator[tuple[int, bytes | None, bytes]]:
    """(line number, key, value) per line; lines that are not JSON objects are sent as they are, no key."""
    rounds = 0
    while True:
        for number, line in lines:
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                yield number, None, line.encode()
                continue
            if not isinstance(doc, dict):
                yield number, None, line.encode()
                continue
            if rounds and "id" in doc:
                doc["id"] = f"{doc['id']}-{rounds}"
            if stamp:
                doc["created_at"] = datetime.now(UTC).isoformat()
            key = str(doc["id"]).encode() if "id" in doc else None
            yield number, key, json.dumps(doc, ensure_ascii=False).encode()
        rounds += 1
        if not loop or not lines:
            return


def max_message_bytes(admin: Any, topic: str, timeout: float) -> int:
    """The topic's ``max.message.bytes``, or the broker default when it cannot be read (no such topic yet)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import ConfigResource

    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    try:
        configs = admin.describe_configs([resource])[resource].result(timeout=timeout)
        return int(configs["max.message.bytes"].value)
    except (KafkaException, KeyError, ValueError, TypeError):
        return DEFAULT_MAX_MESSAGE_BYTES


def run(args: argparse.Namespace) -> int:
    """Publish, rate-limited, and wait for every record to be acknowledged."""
    from confluent_kafka import KafkaError, KafkaException, Producer
    from confluent_kafka.admin import AdminClient

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
    lines = numbered(source)
    ensure_reachable(settings.kafka)
    config = client_config(settings.kafka)
    limit = max_message_bytes(AdminClient(config), topic, settings.kafka.connect_timeout_s)
    # Batches never exceed what the topic takes, and a record larger than that fails at once, locally.
    producer = Producer(config | {"enable.idempotence": True, "linger.ms": 5, "message.max.bytes": limit})
    failures: list[str] = []

    def report(number: int, why: str) -> None:
        failures.append(why)
        print(f"line {number}: {why}; not sent", file=sys.stderr)

    def delivered(number: int, error: Any, message: Any) -> None:
        if error is not None:
            report(number, f"the broker refused the record: {error.str()}")

    sent, started = 0, time.monotonic()
    try:
        for number, key, value in records(lines, args.loop, args.stamp):
            if args.count and sent >= args.count:
                break
            if args.rate > 0:
                delay = started + sent / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            sent += 1
            while True:
                try:
                    producer.produce(topic, value=value, key=key, on_delivery=partial(delivered, number))
                    break
                except BufferError:  # the local queue is full: serve delivery reports, then retry
                    producer.poll(0.1)
                except KafkaException as exc:
                    if exc.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                        raise
                    size = len(value) + len(key or b"")
                    report(
                        number, f"{size:,} bytes, over the {limit:,} bytes {topic} takes (max.message.bytes)"
                    )
                    break
            producer.poll(0)
    except KeyboardInterrupt:
        pass
    producer.flush(30)
    print(f"sent {sent - len(failures)} records to {topic} ({len(failures)} failed)", file=sys.stderr)
    return 1 if failures else 0
