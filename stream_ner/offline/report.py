"""Scoring files with a model or a baseline, and printing score tables (rich)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stream_ner.evaluation import Scores, score
from stream_ner.offline.data import CORPORA, Record, read_jsonl

if TYPE_CHECKING:
    from stream_ner.model.runtime import NerModel

Predictor = Callable[[list[str]], list[list[tuple[int, int, str]]]]


def annotated_labels(records: Sequence[Record]) -> set[str] | None:
    """The labels the records' corpus annotates (from ``source``); ``None`` when the corpus is unknown."""
    names = {r.source.split("/", 1)[0] for r in records}
    if len(names) == 1 and (name := names.pop()) in CORPORA:
        return set(CORPORA[name].labels)
    return None


def model_predictor(model: NerModel, batch_size: int = 256) -> Predictor:
    """Spans from the runtime ``NerModel`` (what ships), with a progress bar over the texts."""
    from rich.progress import Progress

    def predict(texts: list[str]) -> list[list[tuple[int, int, str]]]:
        out: list[list[tuple[int, int, str]]] = []
        with Progress(transient=True) as progress:
            task = progress.add_task(f"{model.name} {model.precision}", total=len(texts))
            for k in range(0, len(texts), batch_size):
                chunk = texts[k : k + batch_size]
                out += [[(e.start, e.end, e.label) for e in found] for found in model.predict(chunk)]
                progress.advance(task, len(chunk))
        return out

    return predict


def evaluate_files(
    files: Sequence[Path], predictor: Predictor, labels: Sequence[str] | None = None
) -> dict[str, Scores]:
    """Scores of ``predictor`` per file, each on ``labels`` or else on the labels its dataset annotates."""
    results = {}
    for path in files:
        records = read_jsonl(path)
        predicted = predictor([r.text for r in records])
        scored = set(labels) if labels else annotated_labels(records)
        results[str(path.parent.name + "/" + path.name)] = score(
            [list(r.spans) for r in records], predicted, scored
        )
    return results


def print_scores(title: str, scores: Scores) -> None:
    """One table: precision, recall, F1 and support per label, then micro."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("label", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for s in (*scores.labels, scores.micro):
        table.add_row(
            s.label, f"{100 * s.precision:.1f}", f"{100 * s.recall:.1f}", f"{100 * s.f1:.1f}", str(s.support)
        )
    Console().print(table)


def print_dev_metrics(metrics: dict[str, Any]) -> None:
    """``{precision: {dataset: Scores.as_dict()}}`` as one F1 table (rows: dataset/label)."""
    from rich.console import Console
    from rich.table import Table

    precisions = list(metrics)
    table = Table(title="dev F1 (entity-level exact match)")
    table.add_column("dataset")
    table.add_column("label")
    for p in precisions:
        table.add_column(p, justify="right")
    datasets = list(next(iter(metrics.values()), {}))
    for name in datasets:
        for label in metrics[precisions[0]][name]:
            table.add_row(name, label, *(f"{metrics[p][name][label]['f1']:.1f}" for p in precisions))
    Console().print(table)
