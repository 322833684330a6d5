"""Training examples from shared-format records, on the real tokenizer: tags, label masks, @-mentions."""

from __future__ import annotations

import numpy as np
import pytest

from stream_ner.model.windows import WindowTokenizer
from stream_ner.offline.data import ID2LABEL, IGNORE, Record, build_examples, with_handle_at, word_tags
from tests.unit.test_windows import tokenizer_path


@pytest.fixture(scope="module")
def tok() -> WindowTokenizer:
    return WindowTokenizer.from_file(tokenizer_path(), with_shapes=True)


def _labelled(tok: WindowTokenizer, record: Record) -> list[tuple[str, str]]:
    """(token, label) for the tokens the loss sees."""
    (ex,) = build_examples([record], tok, max_length=128)
    tokens = [tok.tokenizer.id_to_token(int(i)) for i in ex.input_ids]
    return [(t, ID2LABEL[int(lab)]) for t, lab in zip(tokens, ex.labels, strict=True) if lab != IGNORE]


def test_word_tags_begin_and_inside() -> None:
    starts, ends = [0, 4, 10, 15], [3, 9, 14, 20]
    assert word_tags(starts, ends, [(4, 14, "ORG")]) == ["O", "B-ORG", "I-ORG", "O"]
    assert word_tags(starts, ends, [(0, 3, "PER"), (15, 20, "LOC")]) == ["B-PER", "O", "O", "B-LOC"]


def test_first_subword_carries_the_label_and_specials_are_ignored(tok: WindowTokenizer) -> None:
    text = "Loving Starbucksy in Reykjavik"
    record = Record("t", text, ((7, 17, "ORG"), (21, 30, "LOC")), "wnut17/train")
    (ex,) = build_examples([record], tok, max_length=128)
    assert ex.labels[0] == IGNORE and ex.labels[-1] == IGNORE  # [CLS], [SEP]
    seen = _labelled(tok, record)
    assert [lab for _, lab in seen] == ["O", "B-ORG", "O", "B-LOC"]
    assert len(ex.input_ids) > len(seen) + 2  # later subwords of a word are out of the loss
    assert ex.shape_ids[0] == 0 and set(ex.shape_ids[1:-1]) <= {1, 3}  # lower and title words


def test_btc_has_no_product_in_its_softmax(tok: WindowTokenizer) -> None:
    wnut, btc = build_examples(
        [Record("a", "hi", (), "wnut17/train"), Record("b", "hi", (), "btc/train")], tok, max_length=128
    )
    assert wnut.label_mask.all()
    product = np.array([lab.endswith("PRODUCT") for lab in ID2LABEL])
    assert not btc.label_mask[product].any() and btc.label_mask[~product].all()


def test_handles_are_left_out_of_the_loss_where_a_corpus_does_not_annotate_them(tok: WindowTokenizer) -> None:
    text = "thanks @nike_uk for the Air Max"
    wnut = _labelled(tok, Record("w", text, ((24, 31, "PRODUCT"),), "wnut17/train"))
    assert [t for t, _ in wnut] == ["thanks", "for", "the", "air", "max"]
    btc = _labelled(tok, Record("b", text, ((7, 15, "ORG"),), "btc/train"))
    assert ("@", "B-ORG") in btc and ("nike", "I-ORG") in btc


def test_btc_mention_labelled_without_its_at_is_widened() -> None:
    record = Record("b", "hi @bob !", ((4, 7, "PER"),), "btc/train")
    assert with_handle_at(record).spans == ((3, 7, "PER"),)
    assert with_handle_at(Record("b", "bob !", ((0, 3, "PER"),), "btc/train")).spans == ((0, 3, "PER"),)


def test_long_posts_are_truncated_to_max_length(tok: WindowTokenizer) -> None:
    (ex,) = build_examples([Record("l", "word " * 300, (), "btc/train")], tok, max_length=64)
    assert len(ex.input_ids) == len(ex.labels) == len(ex.shape_ids) == 64
