"""``stream-ner model ...``: export, train, evaluate, predict, benchmark."""

from __future__ import annotations

import argparse

from stream_ner.commands import model_offline, model_runtime


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``model`` group."""
    parser = subparsers.add_parser("model", help="export, train, evaluate, run and benchmark NER models")
    group = parser.add_subparsers(dest="model_command", required=True, metavar="MODEL_COMMAND")
    model_offline.register(group)
    model_runtime.register(group)
