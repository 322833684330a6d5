"""The training loss and batching: masked labels get no gradient, batches are reproducible by seed."""

from __future__ import annotations

import random

import numpy as np
import torch

from stream_ner.offline.data import ID2LABEL, IGNORE, Example, Record
from stream_ner.offline.training import batches, masked_loss


def test_labels_outside_a_corpus_mask_get_no_gradient() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, len(ID2LABEL), requires_grad=True)
    labels = torch.tensor([[IGNORE, 0, IGNORE], [IGNORE, ID2LABEL.index("B-PER"), 0]])
    product = torch.tensor([label.endswith("PRODUCT") for label in ID2LABEL])
    mask = torch.stack([torch.ones(len(ID2LABEL), dtype=torch.bool), ~product])  # row 1: a BTC post
    masked_loss(logits, labels, mask).backward()
    grad = logits.grad
    assert grad is not None
    assert torch.all(grad[1][:, product] == 0), "BTC tokens push PRODUCT neither up nor down"
    assert torch.any(grad[0, 1][product] != 0), "WNUT tokens still teach 'not PRODUCT'"
    assert torch.all(grad[:, 0] == 0) and torch.all(grad[0, 2] == 0), "ignored tokens are out of the loss"


def test_loss_equals_plain_cross_entropy_when_nothing_is_masked() -> None:
    torch.manual_seed(1)
    logits = torch.randn(1, 4, len(ID2LABEL))
    labels = torch.tensor([[0, 1, 2, IGNORE]])
    mask = torch.ones(1, len(ID2LABEL), dtype=torch.bool)
    expected = torch.nn.functional.cross_entropy(logits[0, :3], labels[0, :3])
    assert torch.allclose(masked_loss(logits, labels, mask), expected)


def _example(n: int) -> Example:
    ids = np.arange(n, dtype=np.int64)
    return Example(
        Record(str(n), "x", (), "btc/train"), "btc", ids, ids * 0, ids * 0, np.ones(9, bool), ids, ids
    )


def test_batches_are_length_bucketed_and_reproducible_by_seed() -> None:
    examples = [_example(n) for n in (5, 30, 6, 31, 7, 29, 4, 32)]
    first = batches(examples, 2, random.Random(13))
    again = batches(examples, 2, random.Random(13))
    assert [[e.record.id for e in b] for b in first] == [[e.record.id for e in b] for b in again]
    for batch in first:
        lengths = [len(e.input_ids) for e in batch]
        assert max(lengths) - min(lengths) <= 2
    assert sorted(e.record.id for b in first for e in b) == sorted(e.record.id for e in examples)
