"""Knowledge distillation: a teacher artifact's outputs as soft targets for every training post.

Training the sentiment heads moves the shared encoder away from what the tagger needs. With a teacher
(an exported artifact, run through its fp32 graph), every batch, whatever its corpus, also pays the KL
divergence between the teacher's and the student's tag distributions on its real tokens, so the tagger
keeps what the teacher knows while the encoder learns sentiment. When the teacher has sentiment heads
and the student too, the post and per-token target sentiment distributions are distilled the same way:
that is how a smaller student (fewer layers) learns all three heads from a larger teacher, on every
TweetEval text rather than only the labelled ones a batch draws.

The teacher sees exactly the student's inputs (same tokenizer, same shape ids), so its logits line up
token for token. They are computed once per run and cached in the work directory (float16).

Several teachers make one (``ensemble_outputs``): the student learns the mean of their logits, each
teacher's computed once and cached on its own.

Self-training (``confident_tags``) turns the teacher's soft tags into hard labels on the unlabelled posts
it is sure of, so those posts teach the tagger as gold posts do.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from stream_ner.errors import ConfigError
from stream_ner.model.decode import softmax
from stream_ner.offline.data import ID2LABEL, IGNORE, Example, TeacherOutputs, input_arrays

TEACHER_GRAPH = "model.fp32.onnx"
SENTIMENT_OUTPUTS = ("post_sentiment", "target_sentiment")


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
) -> list[TeacherOutputs]:
    """The teacher's outputs on each example, in order (sentiment too when its graph has the heads)."""
    names = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    wanted = ["logits"] + [n for n in SENTIMENT_OUTPUTS if n in outputs]
    out: list[TeacherOutputs] = [TeacherOutputs(np.zeros((0, len(ID2LABEL)), np.float16))] * len(examples)
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    for k in range(0, len(order), batch_size):
        idx = order[k : k + batch_size]
        arrays = input_arrays([examples[i] for i in idx], pad_id)
        results = dict(zip(wanted, session.run(wanted, {n: arrays[n] for n in names}), strict=True))
        for row, i in enumerate(idx):
            n = len(examples[i].input_ids)
            post, target = results.get("post_sentiment"), results.get("target_sentiment")
            out[i] = TeacherOutputs(
                results["logits"][row, :n].astype(np.float16),
                None if post is None else post[row].astype(np.float16),
                None if target is None else target[row, :n].astype(np.float16),
            )
        if advance is not None:
            advance(len(idx))
    return out


def teacher_outputs(
    session: Any,
    examples: list[Example],
    pad_id: int,
    cache: Path,
    digest: str,
    advance: Callable[[int], None] | None = None,
) -> list[TeacherOutputs]:
    """The teacher's outputs on each example, in order, from the teacher or from ``cache``.

    The cache is used when it holds the outputs of this teacher (``digest``, what ``teacher_id``
    returns for it) for these examples, and written otherwise.
    """
    key = _fingerprint(examples, digest)
    if cache.is_file():
        stored = np.load(cache, allow_pickle=False)
        if "tags" in stored and str(stored["key"]) == key:
            cuts = np.cumsum(stored["lengths"])[:-1]
            tags = np.split(stored["tags"], cuts)
            posts = stored["post"] if "post" in stored else [None] * len(examples)
            targets = np.split(stored["target"], cuts) if "target" in stored else [None] * len(examples)
            if advance is not None:
                advance(len(examples))
            return [TeacherOutputs(*row) for row in zip(tags, posts, targets, strict=True)]
    found = run_teacher(session, examples, pad_id, advance=advance)
    arrays: dict[str, np.ndarray] = {
        "key": np.array(key),
        "lengths": np.array([len(t.tags) for t in found], dtype=np.int64),
        "tags": _stack([t.tags for t in found], len(ID2LABEL)),
    }
    if found and found[0].post is not None:
        arrays["post"] = np.stack([t.post for t in found if t.post is not None])
        arrays["target"] = _stack([t.target for t in found if t.target is not None], 3)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")  # runs sharing a cache never share a temporary
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(cache)
    return found


def ensemble_outputs(per_teacher: list[list[TeacherOutputs]]) -> list[TeacherOutputs]:
    """One teacher's worth of outputs from several teachers' outputs on the same examples.

    Each output is the mean of the teachers' logits (float16), so its softmax is the normalised geometric
    mean of their distributions, at any temperature. Sentiment is the mean over the teachers that have
    sentiment heads (None when none has). A ``ValueError`` when the teachers saw different examples.
    """
    if not per_teacher:
        raise ValueError("an ensemble needs at least one teacher")
    if len({len(outputs) for outputs in per_teacher}) != 1:
        raise ValueError("the teachers' outputs cover different examples")
    return [_mean_outputs(list(rows)) for rows in zip(*per_teacher, strict=True)]


def _mean_outputs(rows: list[TeacherOutputs]) -> TeacherOutputs:
    if len({r.tags.shape for r in rows}) != 1:
        raise ValueError("the teachers' outputs differ in tokens or tags")
    posts = [r.post for r in rows if r.post is not None]
    targets = [r.target for r in rows if r.target is not None]
    return TeacherOutputs(
        _mean([r.tags for r in rows]),
        _mean(posts) if posts else None,
        _mean(targets) if targets else None,
    )


def _mean(arrays: list[np.ndarray]) -> np.ndarray:
    return np.mean(np.stack(arrays).astype(np.float32), axis=0).astype(np.float16)


def confident_tags(example: Example, threshold: float, prefix: int) -> np.ndarray | None:
    """The teacher's most probable tags as the post's labels, or None when it is unsure of any word.

    Labels are on each word's first subword, as gold labels are (``IGNORE`` elsewhere); ``prefix`` is the
    number of special tokens before the text. The post qualifies when, on every word, the teacher's most
    probable tag has at least ``threshold`` probability; a post with no words does not. A ``ValueError``
    without teacher outputs.
    """
    if example.teacher is None:
        raise ValueError(f"post {example.record.id!r} has no teacher outputs")
    word_ids = example.word_ids
    firsts = [t for t, w in enumerate(word_ids) if w >= 0 and (t == 0 or word_ids[t - 1] != w)]
    if not firsts:
        return None
    rows = prefix + np.asarray(firsts)
    probs = softmax(example.teacher.tags[rows])
    if float(probs.max(-1).min()) < threshold:
        return None
    labels = np.full(len(example.input_ids), IGNORE, dtype=np.int64)
    labels[rows] = probs.argmax(-1)
    return labels


def _stack(rows: list[np.ndarray], width: int) -> np.ndarray:
    return np.concatenate(rows) if rows else np.zeros((0, width), np.float16)


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
