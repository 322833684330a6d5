"""Decoding on hand-made logits: BIO/BIOES rules, subword aggregation, window merge, character spans."""

from __future__ import annotations

import numpy as np
import pytest

from stream_ner.model.decode import (
    TagSet,
    TextLogits,
    aggregate_words,
    best_valid_tags,
    decode_tags,
    decode_text,
    decode_texts,
    merge_windows,
    offset_vector,
    softmax,
    word_starts,
)
from stream_ner.model.entity import Entity

BIO = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG"]
BIOES = ["O", "B-ORG", "I-ORG", "E-ORG", "S-ORG", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]


def tags(labels: list[str], names: list[str]) -> np.ndarray:
    return np.asarray([labels.index(n) for n in names], dtype=np.int64)


def onehot(labels: list[str], names: list[str], confidence: float = 8.0) -> np.ndarray:
    """Logits that make ``names`` the argmax per token."""
    logits = np.zeros((len(names), len(labels)), dtype=np.float32)
    logits[np.arange(len(names)), tags(labels, names)] = confidence
    return logits


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["B-PER", "I-PER", "O", "B-ORG"], [(0, 2, "PER"), (3, 4, "ORG")]),
        (["I-PER", "I-PER"], [(0, 2, "PER")]),  # I- without B- starts an entity
        (["B-PER", "I-ORG", "I-ORG"], [(0, 1, "PER"), (1, 3, "ORG")]),  # a label change ends one
        (["B-PER", "B-PER"], [(0, 1, "PER"), (1, 2, "PER")]),  # B- always starts a new one
        (["B-PER", "O", "I-PER"], [(0, 1, "PER"), (2, 3, "PER")]),  # O ends it
        (["O", "O"], []),
        ([], []),
    ],
)
def test_bio_rules(names: list[str], expected: list[tuple[int, int, str]]) -> None:
    assert decode_tags(tags(BIO, names), TagSet.parse(BIO, "BIO")) == expected


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["B-ORG", "I-ORG", "E-ORG"], [(0, 3, "ORG")]),
        (["S-ORG", "S-ORG"], [(0, 1, "ORG"), (1, 2, "ORG")]),
        (["B-ORG", "E-ORG", "I-ORG"], [(0, 2, "ORG"), (2, 3, "ORG")]),  # I- after E- starts a new one
        (["E-LOC"], [(0, 1, "LOC")]),  # a lone E- is an entity of one word
        (["B-ORG", "I-ORG", "S-LOC", "O"], [(0, 2, "ORG"), (2, 3, "LOC")]),  # unclosed B-I is kept
        (["B-ORG", "E-LOC"], [(0, 1, "ORG"), (1, 2, "LOC")]),
    ],
)
def test_bioes_rules(names: list[str], expected: list[tuple[int, int, str]]) -> None:
    assert decode_tags(tags(BIOES, names), TagSet.parse(BIOES, "BIOES")) == expected


def test_bilou_spellings_are_bioes() -> None:
    tagset = TagSet.parse(["O", "B-X", "I-X", "L-X", "U-X"], "BIOES")
    assert tagset.prefixes == ("O", "B", "I", "E", "S")


@pytest.mark.parametrize(
    ("labels", "scheme"), [(["O", "E-PER"], "BIO"), (["B-PER", "I-PER"], "BIO"), (["O", "PER"], "BIO")]
)
def test_label_maps_the_scheme_cannot_produce_are_refused(labels: list[str], scheme: str) -> None:
    with pytest.raises(ValueError):
        TagSet.parse(labels, scheme)


def test_word_starts_treat_literal_specials_as_their_own_word() -> None:
    assert word_starts(np.array([0, 0, 1, -1, -1, 2, 2])).tolist() == [0, 2, 3, 4, 5]
    assert word_starts(np.array([], dtype=np.int64)).tolist() == []


def test_aggregation_strategies_pick_first_mean_and_most_confident() -> None:
    # one word of three subwords; labels O, B-PER, B-ORG
    probs = np.array([[0.1, 0.5, 0.4], [0.1, 0.0, 0.9], [0.2, 0.7, 0.1]], dtype=np.float32)
    starts = np.array([0])
    assert aggregate_words(probs, starts, "first").argmax(-1).tolist() == [1]
    assert np.allclose(aggregate_words(probs, starts, "average"), [[0.4 / 3, 1.2 / 3, 1.4 / 3]])
    assert aggregate_words(probs, starts, "average").argmax(-1).tolist() == [2]
    assert aggregate_words(probs, starts, "max").tolist() == [probs[1].tolist()]


def test_max_aggregation_is_per_word() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], dtype=np.float32)
    words = aggregate_words(probs, np.array([0, 2, 3]), "max")
    assert words.tolist() == [probs[0].tolist(), probs[2].tolist(), probs[3].tolist()]


def test_softmax_rows_sum_to_one_and_survive_large_logits() -> None:
    p = softmax(np.array([[1000.0, 0.0], [0.0, 0.0]]))
    assert np.allclose(p.sum(-1), 1.0) and np.allclose(p, [[1.0, 0.0], [0.5, 0.5]])


def test_merge_takes_each_token_from_the_window_where_it_has_most_context() -> None:
    n = 10
    a = np.full((6, 2), 1.0)  # tokens 0..5
    b = np.full((6, 2), 2.0)  # tokens 4..9
    merged = merge_windows(n, [(0, 6), (4, 10)], [a, b])
    # token 4: 1 from a's cut edge, 0 from b's; token 5: 0 from a's cut edge, 1 from b's
    assert merged[:, 0].tolist() == [1, 1, 1, 1, 1, 2, 2, 2, 2, 2]


def test_merge_of_one_window_is_that_window() -> None:
    a = np.arange(6.0).reshape(3, 2)
    assert merge_windows(3, [(0, 3)], [a]) is a


def test_decode_text_gives_trimmed_character_spans_and_mean_scores() -> None:
    text = "met\u00a0John Smith\u200b at Acme"
    # words as a BERT pre-tokenizer sees them, one token each: met, John, Smith\u200b, at, Acme
    offsets = np.array([[0, 3], [4, 8], [9, 15], [16, 18], [19, 23]])
    word_ids = np.arange(5)
    logits = onehot(BIO, ["O", "B-PER", "I-PER", "O", "B-ORG"])
    logits[2, 2] = 2.0  # less sure of "Smith"
    entities = decode_text(text, logits, offsets, word_ids, TagSet.parse(BIO, "BIO"), "first")
    assert [(e.start, e.end, e.label, e.text) for e in entities] == [
        (4, 14, "PER", "John Smith"),  # the zero-width space is trimmed off
        (19, 23, "ORG", "Acme"),
    ]
    p = softmax(logits)
    assert entities[0].score == pytest.approx((p[1, 1] + p[2, 2]) / 2)
    assert all(text[e.start : e.end] == e.text for e in entities)


def test_decode_text_of_subwords_uses_the_word_span() -> None:
    text = "#Starbucks rocks"
    offsets = np.array([[0, 1], [1, 5], [5, 10], [11, 16]])
    word_ids = np.array([0, 1, 1, 2])
    logits = onehot(BIO, ["O", "B-ORG", "I-PER", "O"])  # the second subword disagrees; "first" wins
    (found,) = decode_text(text, logits, offsets, word_ids, TagSet.parse(BIO, "BIO"), "first")
    assert found == Entity(1, 10, "ORG", found.score, "Starbucks")


def test_decode_text_never_tags_literal_special_tokens() -> None:
    text = "[SEP] Acme"
    offsets = np.array([[0, 5], [6, 10]])
    logits = onehot(BIO, ["B-ORG", "I-ORG"])
    logits[1, BIO.index("B-ORG")] = 6.0  # Acme: I-ORG first, B-ORG a close second, O far behind
    entities = decode_text(text, logits, offsets, np.array([-1, 1]), TagSet.parse(BIO, "BIO"), "first")
    assert [(e.text, e.label) for e in entities] == [("Acme", "ORG")]


@pytest.mark.parametrize("aggregation", ["first", "average", "max"])
def test_decode_texts_gives_each_text_what_it_gets_alone(aggregation: str) -> None:
    """Texts decoded together share arrays, never words, tags or Viterbi passes across their borders."""
    rng = np.random.default_rng(7)
    tagset = TagSet.parse(BIO, "BIO")
    texts = []
    for n in (5, 0, 1, 7, 3, 9, 4):
        words = "Acme $TSLA Jo-Ann Ann Lee of Nike and Bo".split()[:n] if n else []
        text = " ".join(words)
        offsets = np.array([[text.index(w), text.index(w) + len(w)] for w in words], dtype=np.int64)
        offsets = offsets.reshape(-1, 2)
        logits = rng.normal(0.0, 3.0, (n, len(BIO))).astype(np.float32)
        texts.append(TextLogits(text, logits, offsets, np.arange(n, dtype=np.int64)))
    # text 3 starts with I-PER right after text 2's last word B-PER, with the same word id 0 as text 2's:
    # together they would look like one continued name; alone, text 3's start is invalid (Viterbi)
    texts[2].logits[0] = onehot(BIO, ["B-PER"])[0]
    texts[3].logits[0] = onehot(BIO, ["I-PER"])[0]
    together = decode_texts(texts, tagset, aggregation)
    alone = [decode_text(t.text, t.logits, t.offsets, t.word_ids, tagset, aggregation) for t in texts]
    assert together == alone
    assert together[1] == [] and any(together)


def test_label_offsets_shift_a_type_before_the_softmax() -> None:
    labels = [*BIO, "B-PRODUCT", "I-PRODUCT"]
    tagset = TagSet.parse(labels, "BIO")
    text = "new Pixel out"
    offsets = np.array([[0, 3], [4, 9], [10, 13]])
    logits = onehot(labels, ["O", "O", "O"], confidence=2.0)
    logits[1, labels.index("B-PRODUCT")] = 1.5  # Pixel: O by 0.5
    plain = decode_text(text, logits, offsets, np.arange(3), tagset, "first")
    shift = offset_vector(tagset, {"PRODUCT": 1.0, "ORG": 0.0})
    assert shift is not None and shift.tolist() == [0, 0, 0, 0, 0, 1, 1]
    (pixel,) = decode_text(text, logits, offsets, np.arange(3), tagset, "first", shift)
    assert plain == [] and (pixel.text, pixel.label) == ("Pixel", "PRODUCT")
    assert pixel.score == pytest.approx(float(softmax(logits[1] + shift)[labels.index("B-PRODUCT")]))
    assert offset_vector(tagset, {"PRODUCT": 0.0}) is None
    with pytest.raises(ValueError, match="unknown types"):
        offset_vector(tagset, {"BRAND": 1.0})
    with pytest.raises(ValueError, match="finite"):
        offset_vector(tagset, {"PRODUCT": float("inf")})


def probs(labels: list[str], rows: list[dict[str, float]]) -> np.ndarray:
    """Word probabilities: each row's named labels, the rest of the mass spread over the others."""
    out = np.zeros((len(rows), len(labels)))
    for i, row in enumerate(rows):
        rest = (1.0 - sum(row.values())) / (len(labels) - len(row))
        out[i] = [row.get(label, rest) for label in labels]
    return out


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # already valid: each word's most probable label
        ([{"B-PER": 0.9}, {"I-PER": 0.8}, {"O": 0.9}], ["B-PER", "I-PER", "O"]),
        # I- after O: the best valid reading begins the entity there
        ([{"O": 0.9}, {"I-ORG": 0.5, "B-ORG": 0.4}], ["O", "B-ORG"]),
        # ... or drops it, when O is the more probable start
        ([{"O": 0.9}, {"I-ORG": 0.5, "O": 0.4, "B-ORG": 0.05}], ["O", "O"]),
        # a type switch inside a span: the whole span takes the better-supported type
        (
            [{"B-ORG": 0.5, "B-PER": 0.4}, {"I-PER": 0.9}, {"I-PER": 0.9}],
            ["B-PER", "I-PER", "I-PER"],
        ),
        ([{"I-PER": 0.7, "B-PER": 0.2}], ["B-PER"]),  # a text cannot begin inside an entity
    ],
)
def test_best_valid_tags_bio(rows: list[dict[str, float]], expected: list[str]) -> None:
    tagset = TagSet.parse(BIO, "BIO")
    assert [BIO[t] for t in best_valid_tags(probs(BIO, rows), tagset)] == expected


def test_best_valid_tags_bioes_gives_every_entity_a_start() -> None:
    tagset = TagSet.parse(BIOES, "BIOES")
    rows = [{"O": 0.9}, {"E-LOC": 0.6, "S-LOC": 0.3}]  # E- after O: a one-word entity
    assert [BIOES[t] for t in best_valid_tags(probs(BIOES, rows), tagset)] == ["O", "S-LOC"]
    rows = [{"B-ORG": 0.6, "S-ORG": 0.3}, {"O": 0.9}]  # an unclosed B- is left to decode_tags
    assert [BIOES[t] for t in best_valid_tags(probs(BIOES, rows), tagset)] == ["B-ORG", "O"]
