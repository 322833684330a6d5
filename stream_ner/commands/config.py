"""``stream-ner config``: every setting with its environment variable, default and meaning."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``config`` command."""
    parser = subparsers.add_parser("config", help="list every setting, or show the effective values")
    parser.add_argument("--effective", action="store_true", help="show the values in force (secrets masked)")
    parser.add_argument("--markdown", action="store_true", help="print the reference as a Markdown table")
    parser.set_defaults(handler=run)


def reference(model: type[BaseModel], prefix: str = "STREAM_NER_") -> Iterator[tuple[str, str, str]]:
    """(environment variable, default, description) for every leaf setting, depth first."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from reference(annotation, f"{prefix}{name.upper()}__")
            continue
        default: Any = field.get_default(call_default_factory=True)
        yield f"{prefix}{name.upper()}", "" if default is None else str(default), field.description or ""


MASK = "**********"
_SECRET_KEY = re.compile(r"password|secret|token|sasl\.jaas|ssl\.key\.pem|ssl\.keystore\.key", re.I)
_URL_PASSWORD = re.compile(r"(?<=://)([^/@:]*):[^/@]*@")


def masked(value: Any) -> Any:
    """``value`` (settings as JSON data) with every secret replaced by ``MASK``.

    ``SecretStr`` fields dump masked already; this also masks librdkafka properties in ``kafka.extra``
    whose names say they hold a secret, and a password written into a URL (``redis://user:pw@host``).
    """
    if isinstance(value, dict):
        return {
            k: MASK if _SECRET_KEY.search(k) and isinstance(v, str) and v else masked(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, str):
        return _URL_PASSWORD.sub(rf"\1:{MASK}@", value)
    return value


def run(args: argparse.Namespace) -> int:
    """Print the reference table or the effective settings."""
    from rich.console import Console
    from rich.table import Table

    from stream_ner.settings import Settings, load_settings

    if args.effective:
        Console().print_json(data=masked(load_settings().model_dump(mode="json")))
        return 0
    rows = list(reference(Settings))
    if args.markdown:
        print("| environment variable | default | meaning |\n| --- | --- | --- |")
        for env, default, description in rows:
            print(
                f"| `{env}` | `{default}` | {description} |" if default else f"| `{env}` | | {description} |"
            )
        return 0
    table = Table("environment variable", "default", "meaning")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    return 0
