"""Distillation: the loss pulls the student toward the teacher, and the teacher's logits line up with
the student's tokens, whatever the batch, from the cache as from the graph."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from stream_ner.model.decode import softmax
from stream_ner.model.runtime import DEFAULT_PATH
from stream_ner.model.windows import WindowTokenizer
from stream_ner.offline.data import ID2LABEL, IGNORE, Example, Record, TeacherOutputs, build_examples
from stream_ner.offline.distill import (
    confident_tags,
    distill_loss,
    ensemble_outputs,
    run_teacher,
    teacher_id,
    teacher_outputs,
    teacher_session,
)
from stream_ner.offline.training import collate, multitask_loss
from tests.unit.test_sentiment import build_sentiment_artifact

TEXTS = [
    "Loving the new @Nike store in Berlin",
    "Apple and Samsung both shipped phones today, Tim Cook says the iPhone 16 sells out",
    "ugh",
    "Went to Starbucks with Sarah before the Lakers game at Crypto.com Arena #NBA",
]


class NoSession:
    """Stands for a teacher that must not run: the logits have to come from the cache."""

    def get_inputs(self) -> list:
        raise LookupError("the teacher ran: the cache was not used")


def attach_teacher(session: object, examples: list[Example], pad_id: int, cache: Path, digest: str) -> None:
    """Give every example the teacher's outputs, as training does."""
    for ex, outputs in zip(examples, teacher_outputs(session, examples, pad_id, cache, digest), strict=True):
        ex.teacher = outputs


@pytest.fixture(scope="module")
def examples() -> list[Example]:
    tok = WindowTokenizer.from_file(DEFAULT_PATH / "tokenizer.json", with_shapes=True)
    records = [Record(str(i), text, (), "wnut17/train") for i, text in enumerate(TEXTS)]
    return build_examples(records, tok, max_length=128)


def test_distill_loss_is_zero_at_the_teacher_and_pulls_toward_it() -> None:
    torch.manual_seed(0)
    teacher = torch.randn(2, 5, len(ID2LABEL))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert float(distill_loss(teacher.clone(), teacher, mask, 2.0)) == pytest.approx(0.0, abs=1e-6)
    student = torch.zeros_like(teacher, requires_grad=True)
    loss = distill_loss(student, teacher, mask, 2.0)
    assert loss.item() > 0.1
    loss.backward()
    assert student.grad is not None
    assert torch.all(student.grad[0, 3:] == 0), "padding is out of the loss"
    stepped = (student - 5.0 * student.grad).detach()
    moved = distill_loss(stepped, teacher, mask, 2.0).item()
    assert moved < loss.item(), "a gradient step moves toward the teacher"


def test_padding_does_not_change_the_loss() -> None:
    torch.manual_seed(1)
    teacher, student = torch.randn(1, 3, len(ID2LABEL)), torch.randn(1, 3, len(ID2LABEL))
    padded_t = torch.cat([teacher, torch.randn(1, 4, len(ID2LABEL))], dim=1)
    padded_s = torch.cat([student, torch.randn(1, 4, len(ID2LABEL))], dim=1)
    mask = torch.tensor([[True] * 3 + [False] * 4])
    assert torch.allclose(
        distill_loss(student, teacher, torch.ones(1, 3, dtype=torch.bool), 1.0),
        distill_loss(padded_s, padded_t, mask, 1.0),
    )


def test_teacher_logits_line_up_with_tokens_in_any_batch_and_survive_the_cache(
    examples: list[Example], tmp_path: Path
) -> None:
    teacher = DEFAULT_PATH
    session = teacher_session(teacher, threads=1)
    together = run_teacher(session, examples, pad_id=0)
    for ex, outputs in zip(examples, together, strict=True):
        assert outputs.tags.shape == (len(ex.input_ids), len(ID2LABEL))
        (alone,) = run_teacher(session, [ex], pad_id=0)
        pairs = [(alone.tags, outputs.tags)]
        if outputs.post is not None:  # the shipped model has sentiment heads: they line up too
            assert outputs.post.shape == (3,) and outputs.target is not None
            assert outputs.target.shape == (len(ex.input_ids), 3)
            pairs += [(alone.post, outputs.post), (alone.target, outputs.target)]
        for single, batched in pairs:
            assert single is not None
            np.testing.assert_allclose(single.astype(np.float32), batched.astype(np.float32), atol=2e-2)
    cache = tmp_path / "teacher.npz"
    attach_teacher(session, examples, 0, cache, teacher_id(teacher))
    assert cache.is_file()
    fields = [f for f in Example.__slots__ if f != "teacher"]
    fresh = [Example(**{f: getattr(ex, f) for f in fields}) for ex in examples]
    attach_teacher(NoSession(), fresh, 0, cache, teacher_id(teacher))
    for ex, again in zip(examples, fresh, strict=True):
        assert again.teacher is not None and ex.teacher is not None
        np.testing.assert_array_equal(ex.teacher.tags, again.teacher.tags)
    with pytest.raises(LookupError):
        attach_teacher(NoSession(), fresh, 0, cache, "another teacher")  # not another teacher's logits


def test_a_batch_with_teacher_logits_adds_the_distillation_loss(
    examples: list[Example], tmp_path: Path
) -> None:
    session = teacher_session(DEFAULT_PATH, threads=1)
    attach_teacher(session, examples, 0, tmp_path / "t.npz", "t")
    batch = collate(examples, ["input_ids", "attention_mask", "token_type_ids", "shape_ids"], pad_id=0)
    assert batch["teacher"].shape[:2] == batch["labels"].shape
    student = batch["teacher"].float().clone().requires_grad_(True)
    _, parts = multitask_loss(student, batch, distill=(1.0, 2.0))
    assert parts["distill"] == pytest.approx(0.0, abs=1e-4), "the teacher's own logits cost nothing"
    _, parts = multitask_loss(torch.zeros_like(student), batch, distill=(1.0, 2.0))
    assert parts["distill"] > 0.1
    _, parts = multitask_loss(torch.zeros_like(student), batch)
    assert "distill" not in parts, "no teacher configured, no distillation"


def test_a_teacher_with_sentiment_heads_teaches_them_too(examples: list[Example], tmp_path: Path) -> None:
    teacher = build_sentiment_artifact(tmp_path / "teacher")
    session = teacher_session(teacher, threads=1)
    cache = tmp_path / "t.npz"
    attach_teacher(session, examples, 0, cache, teacher_id(teacher))
    fields = [f for f in Example.__slots__ if f != "teacher"]
    fresh = [Example(**{f: getattr(ex, f) for f in fields}) for ex in examples]
    attach_teacher(NoSession(), fresh, 0, cache, teacher_id(teacher))
    for ex, again in zip(examples, fresh, strict=True):
        assert ex.teacher is not None and again.teacher is not None
        assert ex.teacher.post is not None and ex.teacher.post.shape == (3,)
        assert ex.teacher.target is not None and ex.teacher.target.shape == (len(ex.input_ids), 3)
        np.testing.assert_array_equal(ex.teacher.target, again.teacher.target)
        np.testing.assert_array_equal(ex.teacher.post, again.teacher.post)

    batch = collate(examples, ["input_ids", "attention_mask", "token_type_ids", "shape_ids"], pad_id=0)
    tags = batch["teacher"].float()
    post, target = batch["teacher_post"].float(), batch["teacher_target"].float()
    _, parts = multitask_loss((tags, post, target), batch, distill=(1.0, 2.0))
    assert max(parts["distill"], parts["distill_post"], parts["distill_target"]) == pytest.approx(
        0.0, abs=1e-4
    )
    _, parts = multitask_loss((tags, post, torch.zeros_like(target)), batch, distill=(1.0, 2.0))
    assert parts["distill_target"] > 0.01 and parts["distill_post"] == pytest.approx(0.0, abs=1e-4)
    _, parts = multitask_loss(tags, batch, distill=(1.0, 2.0))
    assert "distill_post" not in parts, "a student without sentiment heads distils the tags only"


def test_self_training_labels_only_posts_the_teacher_is_sure_of(examples: list[Example]) -> None:
    """A post's labels are the teacher's argmax tags on each word's first subword, and only when the
    teacher is sure of every word: one unsure word drops the whole post."""
    ex = examples[3]
    prefix = 1
    words = ex.word_ids
    firsts = [t for t in range(len(words)) if words[t] >= 0 and (t == 0 or words[t - 1] != words[t])]
    later = [t for t in range(len(words)) if t not in firsts]
    assert later, "the post needs a word split into subwords"
    rng = np.random.default_rng(3)
    chosen = rng.integers(0, len(ID2LABEL), size=len(ex.input_ids))
    logits = np.full((len(ex.input_ids), len(ID2LABEL)), -4.0, dtype=np.float32)
    logits[np.arange(len(chosen)), chosen] = 4.0  # each token ~0.99 sure of its chosen tag
    sure = replace(ex, teacher=TeacherOutputs(logits.astype(np.float16)))

    labels = confident_tags(sure, 0.9, prefix)
    assert labels is not None
    rows = prefix + np.asarray(firsts)
    assert np.array_equal(labels[rows], chosen[rows])
    others = np.setdiff1d(np.arange(len(labels)), rows)
    assert (labels[others] == IGNORE).all()  # specials and later subwords teach nothing

    assert confident_tags(sure, 0.999, prefix) is None
    unsure = logits.copy()
    unsure[prefix + firsts[-1]] = 0.0  # the last word: every tag equally likely
    sure.teacher = TeacherOutputs(unsure.astype(np.float16))
    assert confident_tags(sure, 0.9, prefix) is None
    unsure_later = logits.copy()
    unsure_later[prefix + later[0]] = 0.0  # a later subword does not count
    sure.teacher = TeacherOutputs(unsure_later.astype(np.float16))
    assert confident_tags(sure, 0.9, prefix) is not None


def test_self_training_needs_teacher_outputs(examples: list[Example]) -> None:
    with pytest.raises(ValueError, match="no teacher outputs"):
        confident_tags(replace(examples[0], teacher=None), 0.9, 1)


def test_an_ensemble_teaches_the_normalised_geometric_mean_of_its_teachers() -> None:
    rng = np.random.default_rng(5)
    tokens, tags = 6, len(ID2LABEL)
    first = [TeacherOutputs(rng.normal(0, 3, (tokens, tags)).astype(np.float16))]
    second = [
        TeacherOutputs(
            rng.normal(0, 3, (tokens, tags)).astype(np.float16),
            rng.normal(0, 1, 3).astype(np.float16),
            rng.normal(0, 1, (tokens, 3)).astype(np.float16),
        )
    ]
    (mean,) = ensemble_outputs([first, second])
    for temperature in (1.0, 2.0):
        p1 = softmax(first[0].tags / temperature)
        p2 = softmax(second[0].tags / temperature)
        geometric = np.sqrt(p1 * p2)
        geometric /= geometric.sum(-1, keepdims=True)
        np.testing.assert_allclose(softmax(mean.tags / temperature), geometric, atol=2e-3)
    # only the second teacher has sentiment heads: its sentiment is the ensemble's
    assert mean.post is not None and mean.target is not None
    np.testing.assert_array_equal(mean.post, second[0].post)
    np.testing.assert_array_equal(mean.target, second[0].target)
    (alone,) = ensemble_outputs([first])
    np.testing.assert_array_equal(alone.tags, first[0].tags)
    assert alone.post is None, "no teacher with sentiment heads, no sentiment targets"


def test_an_ensemble_refuses_teachers_that_saw_other_posts() -> None:
    one = TeacherOutputs(np.zeros((4, len(ID2LABEL)), np.float16))
    shorter = TeacherOutputs(np.zeros((3, len(ID2LABEL)), np.float16))
    with pytest.raises(ValueError, match="different examples"):
        ensemble_outputs([[one, one], [one]])
    with pytest.raises(ValueError, match="differ in tokens"):
        ensemble_outputs([[one], [shorter]])
    with pytest.raises(ValueError, match="at least one"):
        ensemble_outputs([])


def test_two_real_teachers_each_cached_and_averaged(examples: list[Example], tmp_path: Path) -> None:
    shipped = teacher_session(DEFAULT_PATH, threads=1)
    other_path = build_sentiment_artifact(tmp_path / "teacher")
    other = teacher_session(other_path, threads=1)
    found = [
        teacher_outputs(shipped, examples, 0, tmp_path / "a.npz", teacher_id(DEFAULT_PATH)),
        teacher_outputs(other, examples, 0, tmp_path / "b.npz", teacher_id(other_path)),
    ]
    cached = [
        teacher_outputs(NoSession(), examples, 0, tmp_path / "a.npz", teacher_id(DEFAULT_PATH)),
        teacher_outputs(NoSession(), examples, 0, tmp_path / "b.npz", teacher_id(other_path)),
    ]
    ensemble = ensemble_outputs(found)
    assert [e.tags.tobytes() for e in ensemble] == [e.tags.tobytes() for e in ensemble_outputs(cached)]
    for ex, mean, a, b in zip(examples, ensemble, *found, strict=True):
        assert mean.tags.shape == (len(ex.input_ids), len(ID2LABEL))
        expected = (a.tags.astype(np.float32) + b.tags.astype(np.float32)) / 2
        np.testing.assert_allclose(mean.tags.astype(np.float32), expected, atol=1e-2, rtol=1e-3)
        assert not np.array_equal(mean.tags, a.tags), "the second teacher must count"
