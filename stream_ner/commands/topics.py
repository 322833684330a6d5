"""``stream-ner topics apply|check|schemas``: topics and message schemas as code."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``topics`` group."""
    parser = subparsers.add_parser("topics", help="create, check and describe the project's topics")
    group = parser.add_subparsers(dest="topics_command", required=True, metavar="TOPICS_COMMAND")
    apply_ = group.add_parser("apply", help="create or alter topics to match the specs (idempotent)")
    apply_.set_defaults(handler=_apply)
    check = group.add_parser("check", help="report drift between the specs and the cluster; exit 1 on drift")
    check.set_defaults(handler=_check)
    schemas = group.add_parser("schemas", help="write the JSON Schemas of the message values")
    schemas.add_argument("--out", type=Path, default=None, help="directory (default: the specs' schemas/)")
    schemas.set_defaults(handler=_schemas)


def _admin():  # type: ignore[no-untyped-def]
    from confluent_kafka.admin import AdminClient

    from stream_ner.kafka import client_config, ensure_reachable
    from stream_ner.settings import load_settings

    settings = load_settings()
    ensure_reachable(settings.kafka)
    return settings, AdminClient(client_config(settings.kafka))


def _apply(args: argparse.Namespace) -> int:
    from stream_ner import topics

    settings, admin = _admin()
    actions = topics.apply(admin, topics.load_specs(settings))
    console = Console()
    for line in actions or ["nothing to do: every topic matches its spec"]:
        console.print(line)
    return 1 if any(line.startswith("cannot fix") for line in actions) else 0


def _check(args: argparse.Namespace) -> int:
    from stream_ner import topics

    settings, admin = _admin()
    drifts = topics.check(admin, topics.load_specs(settings))
    console = Console()
    for drift in drifts:
        console.print(f"[yellow]drift[/] {drift}")
    if not drifts:
        console.print("no drift")
    return 1 if drifts else 0


def _schemas(args: argparse.Namespace) -> int:
    from stream_ner import topics
    from stream_ner.settings import load_settings

    out = args.out or topics.spec_dir(load_settings()) / "schemas"
    out.mkdir(parents=True, exist_ok=True)
    for name, schema in topics.json_schemas().items():
        (out / name).write_text(topics.render_schema(schema))
        print(out / name)
    return 0
