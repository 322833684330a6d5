"""``stream-ner tail``: pretty-print records of ``entities`` (or any topic) as they arrive."""

from __future__ import annotations

import argparse
import json
import uuid

from rich.console import Console
from rich.text import Text

_COLORS = {"PER": "bold cyan", "ORG": "bold magenta", "LOC": "bold green", "PRODUCT": "bold yellow"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``tail`` command."""
    parser = subparsers.add_parser("tail", help="follow entity events (or any topic) in the terminal")
    parser.add_argument("--topic", default=None, help="topic to follow (default: the entities setting)")
    parser.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    parser.add_argument("--count", type=int, default=0, help="exit after this many records; 0: follow")
    parser.add_argument(
        "--timeout", type=float, default=0.0, help="exit after this many idle seconds; 0: never"
    )
    parser.add_argument("--raw", action="store_true", help="print values as JSON lines")
    parser.set_defaults(handler=run)


def highlight(text: str, entities: list[dict]) -> Text:
    """The post text with every entity span styled by its label."""
    rich = Text(text)
    for entity in entities:
        rich.stylize(_COLORS.get(entity["label"], "bold"), entity["start"], entity["end"])
    return rich


def _entity(entity: dict) -> str:
    """``LABEL:text``, with the sentiment toward it when the event has one (``ORG:Nike (negative)``)."""
    mood = entity.get("sentiment_label")
    return f"{entity['label']}:{entity['text']}" + (f" ({mood})" if mood else "")


def render(value: dict) -> Text:
    """One record as a line or two of rich text."""
    if "post_id" in value and "entities" in value:
        line = Text.assemble((f"{value['post_id']} ", "dim"), highlight(value["text"], value["entities"]))
        labels = ", ".join(_entity(e) for e in value["entities"]) or "no entities"
        brands = f"  brands: {', '.join(value['brands'])}" if value.get("brands") else ""
        mood, score = value.get("sentiment_label"), value.get("sentiment")
        post = f"  post: {mood} {score:+.2f}" if mood and score is not None else ""
        line.append(f"\n    {labels}{brands}{post}", style="dim")
        return line
    if "code" in value and "reason" in value:
        return Text.assemble(("rejected ", "bold red"), f"{value['code']}: {value['reason']}")
    return Text(json.dumps(value, ensure_ascii=False))


def run(args: argparse.Namespace) -> int:
    """Follow the topic with a throw-away consumer group; never commits."""
    import time

    from confluent_kafka import Consumer

    from stream_ner.kafka import client_config, ensure_reachable
    from stream_ner.settings import load_settings

    settings = load_settings()
    topic = args.topic or settings.topics.entities
    ensure_reachable(settings.kafka)
    consumer = Consumer(
        client_config(settings.kafka)
        | {
            "group.id": f"stream-ner-tail-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest" if args.from_beginning else "latest",
        }
    )
    consumer.subscribe([topic])
    console = Console()
    seen, last = 0, time.monotonic()
    try:
        while not args.count or seen < args.count:
            message = consumer.poll(0.5)
            if message is None or message.error():
                if args.timeout and time.monotonic() - last > args.timeout:
                    break
                continue
            last, seen = time.monotonic(), seen + 1
            raw = message.value()
            try:
                value = json.loads(raw) if raw is not None else None
            except (json.JSONDecodeError, UnicodeDecodeError):
                value = None
            if args.raw or not isinstance(value, dict):
                print(raw.decode("utf-8", "replace") if raw is not None else "null", flush=True)
            else:
                console.print(render(value))
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 0
