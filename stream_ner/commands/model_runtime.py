"""``stream-ner model predict | eval``: the model commands that only run a model (no extra needed).

The model is built from the ``model`` settings (``NerModel.from_settings``), with ``--model`` and
``--precision`` overriding the path and the precision (and, for ``eval``, ``--label-offset`` the
artifact's label offsets).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from stream_ner.commands import model_novelty
from stream_ner.errors import ConfigError

if TYPE_CHECKING:
    from stream_ner.model.runtime import NerModel


def register(group: argparse._SubParsersAction) -> None:
    """Add ``predict`` and ``eval`` to the ``model`` group."""
    predict = group.add_parser(
        "predict", help="add predicted entities to each record of a JSONL file (records need a 'text')"
    )
    predict.add_argument(
        "--input", required=True, help="JSONL file of records with a 'text' field; '-': stdin"
    )
    predict.add_argument("--output", required=True, help="JSONL file to write; '-': stdout")
    _model_options(predict)
    predict.add_argument(
        "--field", default="entities", help="field the entities are written to (default: entities, replaced)"
    )
    predict.add_argument("--batch-size", type=int, default=64, help="posts per predict call (default: 64)")
    predict.set_defaults(handler=run_predict)

    evaluate = group.add_parser(
        "eval",
        help="entity-level P/R/F1, or sentiment measures, of a model on JSONL files",
        description="Score a model (the runtime NerModel) on shared-format JSONL files, the format "
        "detected per file. NER files: exact-match precision, recall and F1 per label and micro, on the "
        "labels each dataset annotates. Post sentiment files: macro-averaged recall, accuracy and "
        "macro-F1; target sentiment files: accuracy and macro-F1 (the model needs sentiment heads).",
    )
    evaluate.add_argument("files", nargs="+", type=Path, help="shared-format JSONL files")
    evaluate.add_argument(
        "--model", type=Path, default=None, help="artifact directory (default: the model setting)"
    )
    evaluate.add_argument(
        "--precision",
        default=None,
        choices=["auto", "fp32", "int8", "fp16"],
        help="graph to run (default: setting)",
    )
    evaluate.add_argument(
        "--baseline",
        choices=("spacy", "tfidf"),
        default=None,
        help="spacy: score spaCy en_core_web_sm instead of the model (NER files); tfidf: also score "
        "TF-IDF + logistic regression trained on the corpus' train split (sentiment files)",
    )
    evaluate.add_argument(
        "--sentiment-data",
        default=None,
        help="sentiment data directory the tfidf baseline trains on (default: $STREAM_NER_SENTIMENT_DATA)",
    )
    evaluate.add_argument(
        "--labels", default=None, help="comma-separated labels to score (default: what the dataset annotates)"
    )
    evaluate.add_argument(
        "--label-offset",
        action="append",
        type=label_offset,
        default=None,
        metavar="TYPE=VALUE",
        help="add VALUE to the logits of TYPE's tags before decoding, instead of the artifact's offsets "
        "(repeatable; TYPE=0 turns one off)",
    )
    evaluate.add_argument("--output", type=Path, default=None, help="write the scores as JSON here")
    model_novelty.add_options(evaluate)  # --train: seen / unseen entities
    evaluate.set_defaults(handler=run_eval)


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="model artifact directory (default: the model setting)")
    parser.add_argument(
        "--precision",
        default=None,
        choices=["auto", "fp32", "int8", "fp16"],
        help="graph to run (default: setting)",
    )


def label_offset(text: str) -> tuple[str, float]:
    """``TYPE=VALUE`` of ``--label-offset``: an entity type and a finite number."""
    kind, sep, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not sep or not kind.strip() or not math.isfinite(number):
        raise argparse.ArgumentTypeError(
            f"expected TYPE=VALUE with a finite number, e.g. PRODUCT=0.5, not {text!r}"
        )
    return kind.strip(), number


def load_model(
    path: Path | str | None, precision: str | None, label_offsets: dict[str, float] | None = None
) -> NerModel:
    """The model the settings describe; ``path``, ``precision`` and ``label_offsets`` override when given."""
    from stream_ner.model.runtime import NerModel
    from stream_ner.settings import load_settings

    settings = load_settings().model
    overrides: dict[str, Any] = {}
    if path is not None:
        overrides["path"] = Path(path)
    if precision is not None:
        overrides["precision"] = precision
    return NerModel.from_settings(settings.model_copy(update=overrides), label_offsets)


def run_predict(args: argparse.Namespace) -> int:
    """Read records, predict in batches, write each record with its entities, in input order."""
    from rich.progress import Progress

    model = load_model(args.model, args.precision)
    total = None if args.input == "-" else _count_lines(Path(args.input))
    with (
        _open(args.input, "r") as source,
        _open(args.output, "w") as sink,
        Progress(disable=args.output == "-", transient=False) as progress,
    ):
        task = progress.add_task(f"predict ({model.name} {model.version}, {model.precision})", total=total)
        for batch in _batches(_records(source), args.batch_size):
            found = model.predict([record["text"] for record in batch])
            for record, entities in zip(batch, found, strict=True):
                record[args.field] = [
                    {
                        "start": e.start,
                        "end": e.end,
                        "label": e.label,
                        "score": round(e.score, 4),
                        "text": e.text,
                    }
                    for e in entities
                ]
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
            progress.advance(task, len(batch))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Handler of ``model eval``: NER files as before, sentiment files by ``_eval_sentiment``."""
    from stream_ner.offline.report import evaluate_files, model_predictor, print_scores
    from stream_ner.offline.sentiment_data import file_format

    formats = {path: _format_of(path, file_format) for path in args.files}
    ner_files = [p for p in args.files if formats[p] == "ner"]
    sentiment_files = [p for p in args.files if formats[p] != "ner"]
    offsets = dict(args.label_offset) if args.label_offset else None
    model = None if args.baseline == "spacy" else load_model(args.model, args.precision, offsets)
    output: dict[str, Any] = {}
    if ner_files and args.baseline != "tfidf":
        if args.baseline == "spacy":
            from stream_ner.offline.spacy_baseline import spacy_predictor

            predictor = spacy_predictor()
        else:
            assert model is not None
            predictor = model_predictor(model)
        predictor = model_novelty.remembering(predictor)  # the novelty report reuses the predictions
        labels = [x.strip() for x in args.labels.split(",")] if args.labels else None
        results = evaluate_files(ner_files, predictor, labels)
        for name, scores in results.items():
            print_scores(name, scores)
        output.update({k: v.as_dict() for k, v in results.items()})
        output.update(
            model_novelty.report(ner_files, predictor, labels, args.train, seen_catalog=args.seen_catalog)
        )
    if sentiment_files:
        if model is None:
            raise ConfigError("--baseline spacy scores NER files only; sentiment files need the model")
        output.update(_eval_sentiment(sentiment_files, formats, model, args))
    if args.output:
        args.output.write_text(json.dumps(output, indent=2) + "\n", encoding="utf-8")
    return 0


def _eval_sentiment(
    files: list[Path], formats: dict[Path, str], model: NerModel, args: argparse.Namespace
) -> dict[str, Any]:
    """Sentiment measures of the model (and of the TF-IDF baseline with ``--baseline tfidf``) per file."""
    from stream_ner.offline.sentiment_report import print_sentiment, score_sentiment_file

    baselines: dict[str, Any] = {}
    if args.baseline == "tfidf":
        from stream_ner.extras import require
        from stream_ner.offline.sentiment_data import sentiment_dir
        from stream_ner.offline.sentiment_report import tfidf_analyzer

        require("offline", "`stream-ner model eval --baseline tfidf`")
        root = sentiment_dir(args.sentiment_data)
        baselines = {kind: tfidf_analyzer(root, kind) for kind in sorted({formats[p] for p in files})}
    out: dict[str, Any] = {}
    for path in files:
        name = f"{path.parent.name}/{path.name}"
        columns = {f"{model.name} {model.precision}": score_sentiment_file(path, model.analyze)}
        if baselines:
            columns["TF-IDF + logistic regression"] = score_sentiment_file(path, baselines[formats[path]])
        print_sentiment(f"{name} ({formats[path]} sentiment, %)", columns)
        out[name] = columns
    return out


def _format_of(path: Path, detect: Any) -> str:
    try:
        return str(detect(path))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def _records(lines: IO[str]) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"input line {number} is not JSON: {exc}") from exc
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise ConfigError(f"input line {number} is not an object with a string 'text'")
        yield record


def _batches(records: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _open(name: str, mode: str) -> IO[str]:
    if name == "-":
        stream = sys.stdin if mode == "r" else sys.stdout
        return open(stream.fileno(), mode, encoding="utf-8", closefd=False)
    try:
        return open(name, mode, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot open {name}: {exc}") from exc


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(1 for line in fh if line.strip())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
