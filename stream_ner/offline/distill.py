"""Knowledge distillation of the tag head: a teacher artifact's tag logits as soft targets.

Training the sentiment heads moves the shared encoder away from what the tagger needs. With a teacher
(an exported NER artifact, run through its fp32 graph), every batch, whatever its corpus, also pays
the KL divergence between the teacher's and the student's tag distributions on its real tokens, so
the tagger keeps what the teacher knows while the encoder learns sentiment; the same loss trains a
smaller student from a larger teacher.

The teacher sees exactly the student's inputs (same tokenizer, same shape ids), so its logits line up
token for token. They are computed once per run and cached in the work directory (float16).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from stream_ner.errors import ConfigError
from stream_ner.offline.data import ID2LABEL, Example, input_arrays

TEACHER_GRAPH = "model.fp32.onnx"


def teacher_session(teacher: Path, threads: int) -> Any:
    """An onnxruntime session of the teacher's fp32 graph.

    A ``ConfigError`` if it has no such graph or its tag set differs from the student's.
    """
    import onnxruntime as ort

    graph = teacher / TEACHER_GRAPH
    if not graph.is_file():
        raise ConfigError(f"teacher {teacher} has no {TEACHER_GRAPH}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    width = session.get_outputs()[0].shape[-1]
    if width != len(ID2LABEL):
        raise ConfigError(f"teacher {teacher} has {width} tags, the student {len(ID2LABEL)}")
    return session


def run_teacher(
    session: Any,
    examples: list[Example],
    pad_id: int,
    batch_size: int = 64,
    advance: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """The teacher's tag logits ``[tokens, tags]`` (float16) of each example, in order."""
    names = [i.name for i in session.get_inputs()]
    out: list[np.ndarray] = [np.zeros((0, len(ID2LABEL)), np.float16)] * len(examples)
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    for k in range(0, len(order), batch_size):
        idx = order[k : k + batch_size]
        arrays = input_arrays([examples[i] for i in idx], pad_id)
        (logits,) = session.run(["logits"], {n: arrays[n] for n in names})
        for row, i in enumerate(idx):
            out[i] = logits[row, : len(examples[i].input_ids)].astype(np.float16)
        if advance is not None:
            advance(len(idx))
    return out


def attach_teacher(
    session: Any,
    examples: list[Example],
    pad_id: int,
    cache: Path,
    teacher_id: str,
    advance: Callable[[int], None] | None = None,
) -> None:
    """Set ``teacher_logits`` on every example, from the teacher or from ``cache``.

    The cache is used when it holds the logits of this teacher (``teacher_id``, the digest
    ``teacher_id()`` returns) for these examples, and written otherwise.
    """
    key = _fingerprint(examples, teacher_id)
    if cache.is_file():
        stored = np.load(cache, allow_pickle=False)
        if str(stored["key"]) == key:
            lengths = stored["lengths"]
            rows = np.split(stored["logits"], np.cumsum(lengths)[:-1])
            for ex, row in zip(examples, rows, strict=True):
                ex.teacher_logits = row
            if advance is not None:
                advance(len(examples))
            return
    logits = run_teacher(session, examples, pad_id, advance=advance)
    for ex, row in zip(examples, logits, strict=True):
        ex.teacher_logits = row
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        key=np.array(key),
        lengths=np.array([len(x) for x in logits], dtype=np.int64),
        logits=np.concatenate(logits) if logits else np.zeros((0, len(ID2LABEL)), np.float16),
    )
    tmp.replace(cache)


def distill_loss(student: Any, teacher: Any, token_mask: Any, temperature: float) -> Any:
    """Mean over real tokens of KL(teacher || student) at ``temperature``, scaled by its square.

    ``student`` and ``teacher`` are ``[batch, width, tags]`` logits, ``token_mask`` ``[batch, width]``
    (True on tokens that exist). Zero, with a gradient path, when no token is real.
    """
    import torch

    log_student = torch.log_softmax(student / temperature, dim=-1)
    log_teacher = torch.log_softmax(teacher.float() / temperature, dim=-1)
    per_token = (log_teacher.exp() * (log_teacher - log_student)).sum(-1)
    mask = token_mask.to(per_token.dtype)
    tokens = mask.sum()
    if float(tokens) == 0.0:
        return student.sum() * 0.0
    return (per_token * mask).sum() / tokens * temperature**2


def teacher_id(teacher: Path) -> str:
    """A digest of the teacher's graph: cached logits are reused only for the same teacher."""
    digest = hashlib.sha256()
    with open(teacher / TEACHER_GRAPH, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fingerprint(examples: list[Example], teacher: str) -> str:
    digest = hashlib.sha256(teacher.encode())
    for ex in examples:
        digest.update(ex.input_ids.tobytes())
        digest.update(ex.shape_ids.tobytes())
    return digest.hexdigest()
