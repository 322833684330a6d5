"""The ``stream-ner`` command line.

Each command group lives in its own module under ``stream_ner.commands`` and exposes
``register(subparsers)``; heavy imports (onnxruntime, torch, faust) happen inside the handlers, so
``stream-ner --help`` is instant and the worker never imports the offline stack. Errors stream-ner raises
on purpose (``StreamNerError``) end the command with one line on stderr and exit code 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from stream_ner.errors import StreamNerError

DESCRIPTION = "Real-time named-entity extraction for social-media streams on Kafka."

COMMAND_MODULES: tuple[str, ...] = (
    "stream_ner.commands.model",
    "stream_ner.commands.topics",
    "stream_ner.commands.worker",
    "stream_ner.commands.produce",
    "stream_ner.commands.tail",
    "stream_ner.commands.demo",
    "stream_ner.commands.config",
    "stream_ner.commands.aggregate",
    "stream_ner.commands.brands",
    "stream_ner.commands.dashboard",
    "stream_ner.commands.local",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, one sub-command per registered module."""
    parser = argparse.ArgumentParser(prog="stream-ner", description=DESCRIPTION)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    from stream_ner.logs import configure_logging

    args = build_parser().parse_args(argv)
    configure_logging("WARNING")  # until a command configures its own (the worker does, from its settings)
    try:
        return int(args.handler(args) or 0)
    except StreamNerError as exc:
        print(f"stream-ner: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
