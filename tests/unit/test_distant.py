"""Distant supervision: catalog names in unlabelled posts become partial ORG / PRODUCT tags, nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from stream_ner.brands.linking import BrandLinker
from stream_ner.model.windows import WindowTokenizer
from stream_ner.offline.data import ID2LABEL, IGNORE, Record, TeacherOutputs
from stream_ner.offline.distant import catalog_spans, corpus_conventions, spelling_labels, with_catalog_tags
from stream_ner.offline.sentiment_data import SentimentRecord, build_sentiment_examples
from tests.unit.test_windows import tokenizer_path


@pytest.fixture(scope="module")
def tok() -> WindowTokenizer:
    return WindowTokenizer.from_file(tokenizer_path(), with_shapes=True)


@pytest.fixture(scope="module")
def linker() -> BrandLinker:
    return BrandLinker.from_catalog()


def _found(
    text: str, linker: BrandLinker, conventions: dict[str, str] | None = None
) -> list[tuple[str, str]]:
    spans = catalog_spans(text, linker, spelling_labels(linker.catalog), conventions)
    return [(text[s:e], label) for s, e, label in spans]


def test_names_are_org_products_product_and_handles_keep_their_at(linker: BrandLinker) -> None:
    text = "Samsung just can't beat my iPhone, sorry @Samsung. $AAPL to the moon"
    assert _found(text, linker) == [
        ("Samsung", "ORG"),
        ("iPhone", "PRODUCT"),
        ("@Samsung", "ORG"),
        ("$AAPL", "ORG"),
    ]


def test_ambiguous_names_hashtags_and_lower_case_names_are_not_taught(linker: BrandLinker) -> None:
    labels = spelling_labels(linker.catalog)
    assert "apple" not in labels and "teams" not in labels  # common words, ambiguous in the catalog
    assert _found("Apple pie and Teams of the week", linker) == []
    assert _found("loving my new iphone from samsung #netflix", linker) == []
    assert _found("NIKE and Nike store", linker) == [("NIKE", "ORG"), ("Nike", "ORG")]


def test_only_the_catalog_words_are_in_the_tag_loss_and_sentiment_is_not_repeated(
    tok: WindowTokenizer, linker: BrandLinker
) -> None:
    records = [
        SentimentRecord(
            "1", "Why does my Apple Watch hate Nike Run Club so much", "negative", (), "tweeteval/train"
        ),
        SentimentRecord("2", "what a lovely day", "positive", (), "tweeteval/train"),
    ]
    examples = build_sentiment_examples(records, tok, max_length=128, corpus="tweeteval")
    width = len(examples[0].input_ids)
    tags = np.zeros((width, len(ID2LABEL)), dtype=np.float16)
    examples[0].teacher = TeacherOutputs(tags, np.zeros(3, np.float16), np.zeros((width, 3), np.float16))
    specials = (len(tok.prefix_ids), len(tok.suffix_ids))
    (tagged,) = with_catalog_tags(examples, linker, "catalog", specials)
    assert tagged.corpus == "catalog" and tagged.post_label == IGNORE
    assert tagged.teacher is not None and tagged.teacher.tags is tags, "the teacher's tags stay"
    assert tagged.teacher.post is None and tagged.teacher.target is None, "its sentiment goes with the labels"
    assert examples[0].post_label != IGNORE and (examples[0].labels == IGNORE).all(), (
        "the original is unchanged"
    )
    tokens = [tok.tokenizer.id_to_token(int(i)) for i in tagged.input_ids]
    seen = [(t, ID2LABEL[int(lab)]) for t, lab in zip(tokens, tagged.labels, strict=True) if lab != IGNORE]
    assert seen == [("apple", "B-PRODUCT"), ("watch", "I-PRODUCT"), ("nike", "B-ORG")]
    text = tagged.record.text
    assert [(text[s:e], label) for s, e, label in tagged.record.spans] == [
        ("Apple Watch", "PRODUCT"),
        ("Nike", "ORG"),
    ]


def test_the_training_corpora_label_wins_where_a_corpus_with_both_labels_has_one(linker: BrandLinker) -> None:
    records = [
        Record("1", "Facebook is down, so is YouTube", ((0, 8, "ORG"), (24, 31, "ORG")), "wnut17/train"),
        Record("2", "my facebook and Youtube", ((3, 11, "ORG"), (16, 23, "PRODUCT")), "wnut17/train"),
        Record("3", "@Instagram and Instagram", ((0, 10, "ORG"), (15, 24, "ORG")), "btc/train"),  # no PRODUCT
        Record("4", "Nike the goddess", ((0, 4, "PER"),), "wnut17/train"),
    ]
    conventions = corpus_conventions(records)
    assert conventions == {"facebook": "ORG", "youtube": "ORG", "nike": "PER"}  # ties: first seen
    text = "Facebook, YouTube, Instagram and Nike"
    assert _found(text, linker) == [
        ("Facebook", "PRODUCT"),
        ("YouTube", "PRODUCT"),
        ("Instagram", "PRODUCT"),
        ("Nike", "ORG"),
    ]
    assert _found(text, linker, conventions) == [
        ("Facebook", "ORG"),
        ("YouTube", "ORG"),
        ("Instagram", "PRODUCT"),
    ]
