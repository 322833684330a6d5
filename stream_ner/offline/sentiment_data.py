r"""Shared-format sentiment JSONL to training examples for the two sentiment heads.

Two formats (``DIR/<corpus>/<split>.jsonl``, see the shared data's README), told apart per record:

- **post sentiment** (``tweeteval``): ``{"text", "sentiment"}``; the example's ``post_label``;
- **target sentiment** (``dong14``): ``{"text", "targets": [{"start", "end", "sentiment"}]}``; every
  subword token inside a target span gets the target's label in ``target_labels`` (others ``IGNORE``).

A sentiment example leaves the NER loss out (all its tag labels are ``IGNORE``), and a post- or
target-level example leaves the other sentiment head out: a post contributes only the losses its corpus
labels. Texts are cleaned toward what the live stream carries: TweetEval's literal ``\\uXXXX`` escapes
and HTML entities are decoded; Dong et al.'s Penn-Treebank bracket and quote escapes are mapped back
(target offsets follow). Dong's targets are always lowercase, so with ``recase`` half of the targets
(chosen by seed) are title-cased, lest the model learn that a target is lowercase.
"""

from __future__ import annotations

import html
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream_ner.errors import ConfigError
from stream_ner.model.windows import WindowTokenizer
from stream_ner.offline.data import ID2LABEL, IGNORE, Example, Record, shared_dir

SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
"""Label order of both sentiment heads (and of the graph outputs ``post_sentiment``, ``target_sentiment``)."""

SENTIMENT_ENV = "STREAM_NER_SENTIMENT_DATA"
"""Environment variable naming the shared sentiment data directory (``<dir>/<corpus>/<split>.jsonl``)."""

POST_CORPUS = "tweeteval"
TARGET_CORPUS = "dong14"

_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_PTB = {
    "-LRB-": "(",
    "-RRB-": ")",
    "-LSB-": "[",
    "-RSB-": "]",
    "-LCB-": "{",
    "-RCB-": "}",
    "``": '"',
    "''": '"',
}
_PTB_RE = re.compile("|".join(re.escape(k) for k in _PTB))


@dataclass(frozen=True, slots=True)
class SentimentRecord:
    """One post of a sentiment file: its text, post label (or ``None``) and target spans with labels."""

    id: str
    text: str
    sentiment: str | None
    targets: tuple[tuple[int, int, str], ...]
    source: str

    @property
    def kind(self) -> str:
        """``post`` or ``target``: which head the record teaches."""
        return "target" if self.targets else "post"


def sentiment_dir(path: str | Path | None) -> Path:
    """The sentiment data directory: ``path``, else ``$STREAM_NER_SENTIMENT_DATA``, else a ``ConfigError``."""
    return shared_dir(path, SENTIMENT_ENV, "sentiment", "--sentiment-data")


def file_format(path: str | Path) -> str:
    """``ner``, ``post`` or ``target``: the shared format of a JSONL file, from its first record."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                if "targets" in row:
                    return "target"
                if "sentiment" in row:
                    return "post"
                return "ner"
    raise ConfigError(f"{path} holds no records")


def read_sentiment(path: str | Path) -> list[SentimentRecord]:
    """Records of a sentiment JSONL file (either format), texts as published."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            sentiment = row.get("sentiment")
            if sentiment is not None and sentiment not in SENTIMENT_LABELS:
                raise ConfigError(f"{path}: record {row.get('id')!r} has sentiment {sentiment!r}")
            targets = tuple(
                (int(t["start"]), int(t["end"]), str(t["sentiment"])) for t in row.get("targets") or []
            )
            out.append(
                SentimentRecord(
                    str(row.get("id", "")), str(row["text"]), sentiment, targets, str(row.get("source", ""))
                )
            )
    return out


def load_sentiment_split(root: Path, corpus: str, split: str) -> list[SentimentRecord]:
    """``<root>/<corpus>/<split>.jsonl`` as records."""
    path = root / corpus / f"{split}.jsonl"
    if not path.is_file():
        raise ConfigError(f"missing data file {path}")
    return read_sentiment(path)


def clean(record: SentimentRecord) -> SentimentRecord:
    """The record with escapes decoded (see the module docstring); target offsets are kept in step."""
    pieces: list[str] = []
    targets = []
    cursor = 0
    for start, end, label in sorted(record.targets):
        pieces.append(_clean_text(record.text[cursor:start]))
        at = sum(len(p) for p in pieces)
        pieces.append(record.text[start:end])
        targets.append((at, at + end - start, label))
        cursor = end
    pieces.append(_clean_text(record.text[cursor:]))
    return SentimentRecord(record.id, "".join(pieces), record.sentiment, tuple(targets), record.source)


def _clean_text(text: str) -> str:
    text = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    text = _PTB_RE.sub(lambda m: _PTB[m.group(0)], text)
    return html.unescape(text)


def recased(record: SentimentRecord) -> SentimentRecord:
    """The record with every target span title-cased (same length, so offsets hold)."""
    text = record.text
    for start, end, _ in record.targets:
        text = text[:start] + text[start:end].title() + text[end:]
    return SentimentRecord(record.id, text, record.sentiment, record.targets, record.source)


def build_sentiment_examples(
    records: list[SentimentRecord],
    tokenizer: WindowTokenizer,
    *,
    max_length: int,
    corpus: str,
    recase: bool = False,
    seed: int = 0,
) -> list[Example]:
    """Examples of ``records`` (cleaned, truncated to ``max_length`` tokens with specials), in order."""
    rng = random.Random(f"recase-{seed}")
    records = [clean(r) for r in records]
    if recase:
        records = [recased(r) if r.targets and rng.random() < 0.5 else r for r in records]
    encoded = tokenizer.encode([r.text for r in records])
    room = max_length - tokenizer.specials
    p, q = len(tokenizer.prefix_ids), len(tokenizer.suffix_ids)
    everything = np.ones(len(ID2LABEL), dtype=bool)
    out = []
    for record, enc in zip(records, encoded, strict=True):
        n = min(len(enc), room)
        offsets = enc.offsets[:n]
        word_ids = enc.word_ids[:n]
        targets = np.full(n + p + q, IGNORE, dtype=np.int64)
        spans = []
        for start, end, label in record.targets:
            inside = np.flatnonzero((offsets[:, 0] < end) & (offsets[:, 1] > start) & (word_ids >= 0))
            if len(inside):  # a target cut off by truncation teaches nothing
                targets[p + inside] = SENTIMENT_LABELS.index(label)
                spans.append((p + int(inside[0]), p + int(inside[-1]) + 1, SENTIMENT_LABELS.index(label)))
        post = SENTIMENT_LABELS.index(record.sentiment) if record.sentiment and not record.targets else IGNORE
        ids = np.concatenate([tokenizer.prefix_ids, enc.ids[:n], tokenizer.suffix_ids])
        shapes = np.zeros(n + p + q, dtype=np.int64)
        if enc.shapes is not None:
            shapes[p : p + n] = enc.shapes[:n]
        out.append(
            Example(
                Record(record.id, record.text, (), record.source),
                corpus,
                ids,
                shapes,
                np.full(n + p + q, IGNORE, dtype=np.int64),
                everything,
                offsets,
                word_ids,
                post_label=post,
                target_labels=targets if record.targets else None,
                target_spans=tuple(spans),
            )
        )
    return out


def class_weights(examples: list[Example]) -> list[float]:
    """Balanced weights of the post labels (``n / (classes * n_c)``), in ``SENTIMENT_LABELS`` order."""
    counts = np.bincount([ex.post_label for ex in examples if ex.post_label != IGNORE], minlength=3)
    counts = np.maximum(counts, 1)
    return [round(float(counts.sum() / (len(counts) * c)), 4) for c in counts]
