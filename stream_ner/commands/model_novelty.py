"""What ``stream-ner model eval`` adds per NER file: seen / unseen scores and posts exactly right.

Entities of a scored file are *seen* or *unseen* by the training files' entities (the rule is in
``stream_ner.evaluation``). The training files are those given with ``--train`` (the same for every scored
file), else the ``train.jsonl`` next to each scored file when there is one (``wnut17/dev.jsonl`` is split
by ``wnut17/train.jsonl``, as WNUT-17 did); a file with neither gets no split. Every file also gets the
share of its posts whose entities came out exactly right, the measure of the hand-written challenge sets.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from stream_ner.evaluation import (
    NoveltyScores,
    exact_post_accuracy,
    known_surfaces,
    score_by_novelty,
    surface_key,
)

Predictor = Callable[[list[str]], list[list[tuple[int, int, str]]]]


def add_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--train`` to the ``eval`` parser."""
    parser.add_argument(
        "--train",
        type=Path,
        action="append",
        default=None,
        metavar="FILE",
        help="training JSONL whose entities count as seen, for every file (repeatable; default: the "
        "train.jsonl next to each file, if any)",
    )
    parser.add_argument(
        "--seen-catalog",
        action="store_true",
        help="the shipped brand catalog's names, products, handles and cashtags count as seen too (for "
        "a model trained with --distant-supervision)",
    )


def remembering(predictor: Predictor) -> Predictor:
    """``predictor`` answering a repeated list of texts from memory, so a file is predicted once."""
    answers: dict[tuple[str, ...], list[list[tuple[int, int, str]]]] = {}

    def predict(texts: list[str]) -> list[list[tuple[int, int, str]]]:
        key = tuple(texts)
        if key not in answers:
            answers[key] = predictor(texts)
        return answers[key]

    return predict


def train_files(path: Path, explicit: Sequence[Path] | None) -> list[Path]:
    """The training files that split ``path``: ``explicit``, else the ``train.jsonl`` beside it, else none."""
    if explicit:
        return list(explicit)
    beside = path.with_name("train.jsonl")
    return [beside] if beside.is_file() and beside != path else []


def report(
    files: Sequence[Path],
    predictor: Predictor,
    labels: Sequence[str] | None,
    train: Sequence[Path] | None,
    *,
    seen_catalog: bool = False,
) -> dict[str, Any]:
    """Print and return, per file, the posts exactly right and (with training files) seen / unseen scores.

    With ``seen_catalog`` the brand catalog's spellings count as seen beside the training files'.
    Keys are ``<folder>/<file>#novelty``, beside the keys ``evaluate_files`` gives the plain scores.
    """
    from rich.console import Console

    from stream_ner.offline.data import read_jsonl
    from stream_ner.offline.report import annotated_labels

    out: dict[str, Any] = {}
    for path in files:
        records = read_jsonl(path)
        texts, gold = [r.text for r in records], [list(r.spans) for r in records]
        predicted = predictor(texts)
        scored = set(labels) if labels else annotated_labels(records)
        if scored is None:
            scored = {s[2] for g in gold for s in g}
        name = f"{path.parent.name}/{path.name}"
        accuracy = exact_post_accuracy(gold, predicted, scored)
        entry: dict[str, Any] = {
            "posts": len(records),
            "posts_exactly_right": round(accuracy * len(records)),
            "post_accuracy": round(100 * accuracy, 2),
        }
        right = entry["posts_exactly_right"]
        Console().print(f"{name}: posts exactly right {right}/{len(records)} ({100 * accuracy:.1f}%)")
        sources = train_files(path, train)
        if sources:
            known = _known(tuple(sources)) | (_catalog_surfaces() if seen_catalog else frozenset())
            split = score_by_novelty(texts, gold, predicted, known, scored)
            seen_in = [f"{p.parent.name}/{p.name}" for p in sources] + (
                ["brand catalog"] if seen_catalog else []
            )
            print_novelty(f"{name}: seen / unseen in {', '.join(seen_in)}", split)
            entry |= {
                "train": seen_in,
                "seen": split.seen.as_dict(),
                "unseen": split.unseen.as_dict(),
            }
        out[f"{name}#novelty"] = entry
    return out


@cache
def _known(paths: tuple[Path, ...]) -> frozenset[str]:
    from stream_ner.offline.data import read_jsonl

    records = [r for p in paths for r in read_jsonl(p)]
    return known_surfaces([r.text for r in records], [r.spans for r in records])


@cache
def _catalog_surfaces() -> frozenset[str]:
    from stream_ner.brands.catalog import load_catalog

    brands = load_catalog().brands.values()
    return frozenset(
        surface_key(name)
        for b in brands
        for name in (b.name, *b.aliases, *b.products, *b.handles, *b.hashtags, *b.cashtags)
    )


def print_novelty(title: str, split: NoveltyScores) -> None:
    """One table: precision, recall, F1 and support per label and micro, seen beside unseen."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("label")
    for side in ("seen", "unseen"):
        table.add_column(f"{side} F1 (P / R)", justify="right")
        table.add_column(f"{side} n", justify="right")
    for seen, unseen in zip(
        (*split.seen.labels, split.seen.micro), (*split.unseen.labels, split.unseen.micro), strict=True
    ):
        cells = [
            value
            for s in (seen, unseen)
            for value in (
                f"{100 * s.f1:.1f} ({100 * s.precision:.1f} / {100 * s.recall:.1f})",
                str(s.support),
            )
        ]
        table.add_row(seen.label, *cells)
    Console().print(table)
