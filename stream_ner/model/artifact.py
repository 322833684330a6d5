"""The on-disk contract of a model artifact: what export writes and ``NerModel.load`` reads.

A model artifact is a directory::

    manifest.json      what it is: name, version, source, created_at, library versions, opset,
                       parity figures, dev metrics, and {"files": {name: sha256}} for every file below
    ner_config.json    how to run it: {"id2label": ["O", "B-PER", ...], "scheme": "BIO" | "BIOES",
                       "max_length": 128, "stride": 32, "aggregation": "first" | "average" | "max",
                       "inputs": {name: default}}  (defaults for constant extra inputs, see below)
    tokenizer.json     a Hugging Face fast tokenizer (``tokenizers.Tokenizer.from_file``)
    model.<precision>.onnx   one graph per exported precision: fp32, int8 (CPU), fp16 (GPU)

Every graph has the output ``logits`` (float, ``[batch_size, sequence_length, num_labels]``); a graph
with sentiment heads also has ``post_sentiment`` (float, ``[batch_size, 3]``) and ``target_sentiment``
(float, ``[batch_size, sequence_length, 3]``), logits in the order of ``ner_config.json``'s
``"sentiment_labels": ["negative", "neutral", "positive"]``. Every graph takes
``input_ids`` plus any of ``attention_mask``, ``token_type_ids`` and the extra feature inputs of
``stream_ner.model.features`` (``shape_ids``), all int64 ``[batch_size, sequence_length]``. The runtime
reads the input names from the session and feeds exactly those; an input it does not know is an error
at load, never a silent zero.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

MANIFEST = "manifest.json"
NER_CONFIG = "ner_config.json"
TOKENIZER = "tokenizer.json"
PRECISIONS = ("fp32", "int8", "fp16")
POST_SENTIMENT = "post_sentiment"
TARGET_SENTIMENT = "target_sentiment"
SENTIMENT_LABELS = ("negative", "neutral", "positive")


def graph_name(precision: str) -> str:
    """File name of the ONNX graph for one precision."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    return f"model.{precision}.onnx"


def sha256(path: Path) -> str:
    """Hex sha256 of a file, as ``manifest.json`` lists it."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tag_scheme(id2label: Sequence[str]) -> str:
    """The ``scheme`` of a label map: BIOES when any label has an E-/S- (or BILOU L-/U-) prefix, else BIO."""
    return "BIOES" if any(label.startswith(("E-", "S-", "L-", "U-")) for label in id2label) else "BIO"
