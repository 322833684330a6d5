"""A post's entities do not depend on its batch mates, for every graph the shipped model runs on CPU.

The worker batches whatever arrives together, and a replay after a crash batches the same posts
differently; an event repeated then must carry the same entities (``EntityEvent`` contract). So for each
shipped precision, random batch compositions (1 to 64 posts of mixed lengths, long posts that run in
several windows, duplicates, an empty post) are compared post by post with runs of each post alone, at
the level the event carries: span, label, text and the score rounded as ``EntityMention`` rounds it.

Two batching set-ups per precision: the worker's (length-sorted batches cut at 10% padding) and one batch
of up to 64 rows with no padding limit, where short posts sit next to full 128-token windows.

A graph with sentiment outputs is held to the same for ``analyze``: every post and entity sentiment has
the same label alone and in a batch, and its probabilities agree within 1e-6 (fp32 sums in another order
when rows are padded differently: about 6e-8 was seen).
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from stream_ner.messages import EntityMention
from stream_ner.model import artifact
from stream_ner.model.runtime import DEFAULT_PATH, NerModel
from stream_ner.model.windows import plan_windows

SAMPLES = DEFAULT_PATH.parent.parent / "samples" / "posts.jsonl"
SEED = 20260
TRIALS = 6


def _texts() -> list[str]:
    """The sample posts, a few edge cases, and long posts built from samples (several windows each)."""
    with open(SAMPLES, encoding="utf-8") as fh:
        posts = [json.loads(line)["text"] for line in fh if line.strip()]
    rng = random.Random(SEED)
    joiners = [" ", "\n", " | ", " ... ", " 🔥 "]
    long_posts = [rng.choice(joiners).join(rng.choices(posts, k=rng.randint(8, 16))) for _ in range(5)]
    return [*posts, "", "lol", "🙂🙂🙂", "@nike", *long_posts]


TEXTS = _texts()


def _sentiments(model: NerModel, texts: list[str]) -> list[list[tuple[str, np.ndarray]]]:
    """Per text: (label, probabilities) of the post's sentiment, then of each entity's."""
    return [
        [(s.label, np.asarray(s.probs)) for s in (a.sentiment, *(e.sentiment for e in a.entities)) if s]
        for a in model.analyze(texts)
    ]


def _same(a: list[tuple[str, np.ndarray]], b: list[tuple[str, np.ndarray]]) -> bool:
    return len(a) == len(b) and all(
        x[0] == y[0] and np.abs(x[1] - y[1]).max() <= 1e-6 for x, y in zip(a, b, strict=True)
    )


def _carried(model: NerModel, texts: list[str]) -> list[list[EntityMention]]:
    return [[EntityMention.of(e) for e in found] for found in model.predict(texts)]


@pytest.fixture(scope="module", params=["fp32", "int8"])
def precision(request: pytest.FixtureRequest) -> str:
    if not (DEFAULT_PATH / artifact.graph_name(request.param)).is_file():
        pytest.fail(f"the shipped model has no {request.param} graph")
    return str(request.param)


def test_long_posts_run_in_several_windows() -> None:
    model = NerModel.load()
    encoded = model.tokenizer.encode(TEXTS)
    windows = plan_windows(
        [len(e) for e in encoded], model.max_length - model.tokenizer.specials, model.stride
    )
    per_text = [sum(w.text_index == i for w in windows) for i in range(len(TEXTS))]
    assert sum(n >= 2 for n in per_text) == 5 and max(per_text) >= 3


@pytest.mark.parametrize(
    ("max_batch_size", "max_padding"), [(256, 0.0), (64, 1.0)], ids=["worker-batching", "one-padded-batch"]
)
def test_entities_are_the_same_alone_and_in_any_batch(
    precision: str, max_batch_size: int, max_padding: float
) -> None:
    model = NerModel.load(precision=precision, max_batch_size=max_batch_size, max_padding=max_padding)
    alone = [_carried(model, [text])[0] for text in TEXTS]
    rng = random.Random(f"{SEED}-{precision}-{max_padding}")
    differing: set[int] = set()
    for _ in range(TRIALS):
        picked = rng.choices(range(len(TEXTS)), k=rng.randint(1, 64))
        together = _carried(model, [TEXTS[i] for i in picked])
        differing.update(i for i, found in zip(picked, together, strict=True) if found != alone[i])
    assert not differing, (
        f"{precision}: {len(differing)} posts got other entities or scores in a batch than alone, e.g. "
        f"{TEXTS[min(differing)][:80]!r}"
    )


@pytest.mark.parametrize(
    ("max_batch_size", "max_padding"), [(256, 0.0), (64, 1.0)], ids=["worker-batching", "one-padded-batch"]
)
def test_sentiments_are_the_same_alone_and_in_any_batch(
    precision: str, max_batch_size: int, max_padding: float
) -> None:
    model = NerModel.load(precision=precision, max_batch_size=max_batch_size, max_padding=max_padding)
    if not model.has_sentiment:
        pytest.skip("the shipped model has no sentiment outputs")
    alone = [_sentiments(model, [text])[0] for text in TEXTS]
    rng = random.Random(f"{SEED}-{precision}-{max_padding}-sentiment")
    differing: set[int] = set()
    for _ in range(TRIALS):
        picked = rng.choices(range(len(TEXTS)), k=rng.randint(1, 64))
        together = _sentiments(model, [TEXTS[i] for i in picked])
        differing.update(i for i, found in zip(picked, together, strict=True) if not _same(found, alone[i]))
    assert not differing, (
        f"{precision}: {len(differing)} posts got other sentiments in a batch than alone, e.g. "
        f"{TEXTS[min(differing)][:80]!r}"
    )
