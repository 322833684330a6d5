"""``stream-ner model ...``: run and evaluate a model (runtime), or export, train and benchmark (offline)."""

from __future__ import annotations

import argparse

from stream_ner.commands import model_offline, model_runtime


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``model`` group."""
    parser = subparsers.add_parser(
        "model",
        help="run, evaluate, export, train and benchmark NER models",
        description="predict and eval need only the runtime; export, train and bench need the offline "
        "extra (pip install 'stream-ner[offline]').",
    )
    group = parser.add_subparsers(dest="model_command", required=True, metavar="MODEL_COMMAND")
    model_runtime.register(group)  # predict, eval: the runtime
    model_offline.register(group)  # export, train, bench: the offline extra
