"""Shared-format NER JSONL to training examples: word tags, per-token labels and loss masks.

Posts are tokenized exactly as the runtime tokenizes them (``stream_ner.model.windows.WindowTokenizer``),
so training sees the same words, subwords and shape classes as inference. Each pre-tokenizer word gets a
BIO tag from the gold character spans; the first subword of a word carries its label, later subwords
are ignored by the loss (the runtime's ``first`` aggregation reads the first subword).

Two corpus conventions are made explicit here rather than learnt as noise:

- **Labels a dataset does not annotate** (BTC has no PRODUCT): the example's ``label_mask`` excludes
  those labels from the softmax, so a product in a BTC post is never taught as "not PRODUCT".
- **@-mentions** are entities in BTC and unannotated in WNUT-17. The shipped policy follows BTC (a
  handle such as ``@nike`` is a brand mention, span including the ``@``): words of a ``@handle`` in a
  dataset that does not annotate handles are left out of the loss, and BTC mentions labelled without
  their ``@`` are widened to include it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stream_ner.errors import ConfigError
from stream_ner.model.windows import WindowTokenizer

LABELS: tuple[str, ...] = ("PER", "ORG", "LOC", "PRODUCT")
"""Entity types of the shared data, in label-map order."""

ID2LABEL: tuple[str, ...] = ("O", *(f"{p}-{t}" for t in LABELS for p in ("B", "I")))
IGNORE = -100
"""Label id the loss skips (later subwords, special tokens, handles a dataset leaves unannotated)."""

DATA_ENV = "STREAM_NER_NER_DATA"
"""Environment variable naming the shared data directory (``<dir>/<dataset>/<split>.jsonl``)."""


@dataclass(frozen=True, slots=True)
class Corpus:
    """What a dataset annotates: its entity types and whether @-mentions are entities."""

    name: str
    labels: frozenset[str]
    annotates_handles: bool


CORPORA: dict[str, Corpus] = {
    "wnut17": Corpus("wnut17", frozenset(LABELS), annotates_handles=False),
    "btc": Corpus("btc", frozenset({"PER", "ORG", "LOC"}), annotates_handles=True),
}

_HANDLE = re.compile(r"@\w+")


@dataclass(frozen=True, slots=True)
class Record:
    """One post of the shared format: text and gold entities as ``(start, end, label)``."""

    id: str
    text: str
    spans: tuple[tuple[int, int, str], ...]
    source: str


@dataclass(frozen=True, slots=True, eq=False)
class TeacherOutputs:
    """A teacher's logits on one post (float16).

    Tags ``[tokens, tags]`` and, from a teacher with sentiment heads, post ``[3]`` and target
    ``[tokens, 3]`` sentiment.
    """

    tags: np.ndarray
    post: np.ndarray | None = None
    target: np.ndarray | None = None


@dataclass(slots=True, eq=False)
class Example:
    """One post ready for the model: token arrays (specials included) and its loss masks."""

    record: Record
    corpus: str
    input_ids: np.ndarray
    shape_ids: np.ndarray
    labels: np.ndarray
    label_mask: np.ndarray
    """Boolean ``[num_labels]``: labels the post's corpus can teach (others are left out of the softmax)."""
    offsets: np.ndarray = field(repr=False)
    word_ids: np.ndarray = field(repr=False)
    post_label: int = IGNORE
    """Post sentiment label id (``IGNORE``: the post's corpus does not label it)."""
    target_labels: np.ndarray | None = field(default=None, repr=False)
    """Target sentiment label id per token (``IGNORE`` outside target spans); ``None``: no targets."""
    target_spans: tuple[tuple[int, int, int], ...] = ()
    """Each target as ``(first token, end token, label id)``, token indices into ``input_ids``."""
    teacher: TeacherOutputs | None = field(default=None, repr=False)
    """A teacher's outputs on this post, for distillation (``stream_ner.offline.distill``)."""


def input_arrays(batch: list[Example], pad_id: int) -> dict[str, np.ndarray]:
    """The model inputs of a batch, padded to its longest example.

    ``input_ids``, ``attention_mask``, ``token_type_ids`` and ``shape_ids``, each ``[batch, width]`` int64.
    """
    width = max(len(ex.input_ids) for ex in batch)
    ids = np.full((len(batch), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(batch), width), dtype=np.int64)
    shapes = np.zeros((len(batch), width), dtype=np.int64)
    for row, ex in enumerate(batch):
        n = len(ex.input_ids)
        ids[row, :n] = ex.input_ids
        mask[row, :n] = 1
        shapes[row, :n] = ex.shape_ids
    zeros = np.zeros_like(ids)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": zeros, "shape_ids": shapes}


def data_dir(path: str | Path | None) -> Path:
    """The shared data directory: ``path``, else ``$STREAM_NER_NER_DATA``; a ``ConfigError`` if neither."""
    return shared_dir(path, DATA_ENV, "NER", "--data")


def shared_dir(path: str | Path | None, env: str, what: str, option: str) -> Path:
    """``path``, else the directory ``$env`` names; a ``ConfigError`` naming ``option`` if neither is one."""
    chosen = path if path is not None else os.environ.get(env)
    if not chosen:
        raise ConfigError(f"no {what} data directory: pass {option} or set {env}")
    root = Path(chosen)
    if not root.is_dir():
        raise ConfigError(f"{what} data directory {root} does not exist")
    return root


def read_jsonl(path: str | Path) -> list[Record]:
    """Records of a shared-format JSONL file (entities with a null label are skipped)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            spans = tuple(
                (int(e["start"]), int(e["end"]), str(e["label"]))
                for e in row.get("entities") or []
                if e.get("label")
            )
            out.append(Record(str(row.get("id", "")), str(row["text"]), spans, str(row.get("source", ""))))
    return out


def corpus_of(record: Record, default: str | None = None) -> Corpus:
    """The corpus conventions of a record, from its ``source`` (``<dataset>/<split>``)."""
    name = record.source.split("/", 1)[0] or (default or "")
    if name not in CORPORA:
        raise ConfigError(f"unknown corpus {name!r} for record {record.id!r}; known: {sorted(CORPORA)}")
    return CORPORA[name]


def with_handle_at(record: Record) -> Record:
    """Widen an entity that starts right after ``@`` to include it (one @-mention convention)."""
    spans = tuple(
        (s - 1, e, label) if s > 0 and record.text[s - 1] == "@" else (s, e, label)
        for s, e, label in record.spans
    )
    return Record(record.id, record.text, spans, record.source)


def word_tags(starts: Sequence[int], ends: Sequence[int], spans: Iterable[tuple[int, int, str]]) -> list[str]:
    """BIO tag per word from character spans: a word inside a span is ``I-``, the span's first word ``B-``."""
    tags = ["O"] * len(starts)
    for s, e, label in sorted(spans):
        first = True
        for i, (ws, we) in enumerate(zip(starts, ends, strict=True)):
            if we <= s or ws >= e or tags[i] != "O":
                continue
            tags[i] = f"{'B' if first else 'I'}-{label}"
            first = False
    return tags


def token_labels(
    word_ids: np.ndarray,
    offsets: np.ndarray,
    spans: Iterable[tuple[int, int, str]],
    specials: tuple[int, int],
    *,
    unannotated: Sequence[tuple[int, int]] = (),
    partial: bool = False,
) -> np.ndarray:
    """Label ids per token, specials included, from gold character spans: a word's tag on its first subword.

    ``specials`` is ``(prefix, suffix)`` token counts around the text's tokens. Later subwords and
    specials get ``IGNORE``; so do the words inside an ``unannotated`` character range and, when
    ``partial`` (a post labelled only where its spans are), the words outside every span.
    """
    label_ids = {label: i for i, label in enumerate(ID2LABEL)}
    words = sorted({int(w) for w in word_ids if w >= 0})
    bounds = {w: (int(offsets[word_ids == w, 0].min()), int(offsets[word_ids == w, 1].max())) for w in words}
    tagged = word_tags([bounds[w][0] for w in words], [bounds[w][1] for w in words], spans)
    tags = dict(zip(words, tagged, strict=True))
    prefix, suffix = specials
    labels = np.full(len(word_ids) + prefix + suffix, IGNORE, dtype=np.int64)
    seen: set[int] = set()
    for t, w in enumerate(int(x) for x in word_ids):
        if w < 0 or w in seen:
            continue
        seen.add(w)
        ws, we = bounds[w]
        if any(hs <= ws and we <= he for hs, he in unannotated):
            continue
        if partial and tags[w] == "O":
            continue
        labels[prefix + t] = label_ids[tags[w]]
    return labels


def build_examples(
    records: list[Record], tokenizer: WindowTokenizer, *, max_length: int, corpus: str | None = None
) -> list[Example]:
    """Examples of ``records`` (truncated to ``max_length`` tokens with specials), in order."""
    encoded = tokenizer.encode([r.text for r in records])
    room = max_length - tokenizer.specials
    p, q = len(tokenizer.prefix_ids), len(tokenizer.suffix_ids)
    out = []
    for record, enc in zip(records, encoded, strict=True):
        conv = corpus_of(record, corpus)
        if conv.annotates_handles:
            record = with_handle_at(record)
        n = min(len(enc), room)
        word_ids = enc.word_ids[:n]
        offsets = enc.offsets[:n]
        unannotated = (
            [] if conv.annotates_handles else [(m.start(), m.end()) for m in _HANDLE.finditer(record.text)]
        )
        labels = token_labels(word_ids, offsets, record.spans, (p, q), unannotated=unannotated)
        ids = np.concatenate([tokenizer.prefix_ids, enc.ids[:n], tokenizer.suffix_ids])
        shapes = np.zeros(n + p + q, dtype=np.int64)
        if enc.shapes is not None:
            shapes[p : p + n] = enc.shapes[:n]
        mask = np.array([lab == "O" or lab[2:] in conv.labels for lab in ID2LABEL])
        out.append(Example(record, conv.name, ids, shapes, labels, mask, offsets, word_ids))
    return out


def load_split(root: Path, dataset: str, split: str) -> list[Record]:
    """``<root>/<dataset>/<split>.jsonl`` as records."""
    path = root / dataset / f"{split}.jsonl"
    if not path.is_file():
        raise ConfigError(f"missing data file {path}")
    return read_jsonl(path)


def describe(examples: list[Example]) -> dict[str, Any]:
    """Counts for logs and the manifest: posts and labelled tokens (tags, target sentiment) per corpus."""
    out: dict[str, Any] = {}
    for ex in examples:
        c = out.setdefault(ex.corpus, {"posts": 0, "tokens_in_loss": 0})
        c["posts"] += 1
        c["tokens_in_loss"] += int((ex.labels != IGNORE).sum())
        if ex.post_label != IGNORE:
            c["post_labels"] = c.get("post_labels", 0) + 1
        if ex.target_labels is not None:
            c["target_tokens"] = c.get("target_tokens", 0) + int((ex.target_labels != IGNORE).sum())
    return out
