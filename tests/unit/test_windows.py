"""Tokenization into windows and padded batches, on a real tokenizer: offsets, windows, bucketing."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import pytest

from stream_ner.model.features import SHAPE_CLASSES
from stream_ner.model.runtime import DEFAULT_PATH
from stream_ner.model.windows import Window, WindowTokenizer, plan_windows

EDGE_TEXTS = [
    "Hi @elonmusk 😀👍🏽 #Tesla https://x.co/a?b=1&c=%20 lol",
    "東京 へ 行く مرحبا بالعالم Москва",
    " \tApple\u00a0iPhone\u200d15 \n\n  Samsung\u200b Galaxy  ",
    "😀Apple👍 café ÜNITED $TSLA ❤️‍🔥 👨‍👩‍👧",
    "",
    "   ",
    "a",
]


def tokenizer_path() -> Path:
    """The tokenizer of the default model shipped in the package."""
    shipped = DEFAULT_PATH / "tokenizer.json"
    assert shipped.is_file(), "the default model artifact is missing its tokenizer"
    return shipped


@pytest.fixture(scope="module")
def tok() -> WindowTokenizer:
    return WindowTokenizer.from_file(tokenizer_path(), with_shapes=True)


def _plain(s: str) -> str:
    """What an uncased BERT normalizer makes of a span: lower case, accents stripped."""
    return "".join(c for c in unicodedata.normalize("NFD", s.lower()) if unicodedata.category(c) != "Mn")


def test_specials_and_padding_come_from_the_tokenizer(tok: WindowTokenizer) -> None:
    vocab = tok.tokenizer.get_vocab()
    assert [vocab["[CLS]"]] == tok.prefix_ids.tolist()
    assert [vocab["[SEP]"]] == tok.suffix_ids.tolist()
    assert tok.pad_id == vocab["[PAD]"]
    assert tok.tokenizer.truncation is None and tok.tokenizer.padding is None


@pytest.mark.parametrize("text", EDGE_TEXTS)
def test_offsets_point_into_the_original_text(tok: WindowTokenizer, text: str) -> None:
    (enc,) = tok.encode([text])
    tokens = [tok.tokenizer.id_to_token(int(i)) for i in enc.ids]
    assert len(enc.offsets) == len(enc.ids) == len(enc.word_ids) == len(enc.shapes)
    for token, (start, end) in zip(tokens, enc.offsets.tolist(), strict=True):
        assert 0 <= start < end <= len(text)
        span = text[start:end]
        assert span.strip() == span and not any(c.isspace() for c in span)
        if token != "[UNK]":
            cleaned = "".join(c for c in span if unicodedata.category(c) not in ("Cf", "Cc"))
            assert _plain(cleaned) == token.removeprefix("##")
    assert np.all(np.diff(enc.offsets[:, 0]) > 0) if len(enc) > 1 else True


def test_every_word_of_a_post_is_reachable(tok: WindowTokenizer) -> None:
    text = EDGE_TEXTS[0]
    (enc,) = tok.encode([text])
    covered = {i for s, e in enc.offsets.tolist() for i in range(s, e)}
    assert all(i in covered for i, c in enumerate(text) if not c.isspace())


def test_shapes_follow_the_written_word(tok: WindowTokenizer) -> None:
    text = "Apple NASA iPhone nyc 2024 ..."
    (enc,) = tok.encode([text])
    spans: dict[int, tuple[int, int, int]] = {}
    for (s, e), word, shape in zip(
        enc.offsets.tolist(), enc.word_ids.tolist(), enc.shapes.tolist(), strict=True
    ):
        lo, hi, _ = spans.get(word, (s, e, shape))
        spans[word] = (min(lo, s), max(hi, e), shape)
    names = {text[lo:hi]: SHAPE_CLASSES[shape] for lo, hi, shape in spans.values()}
    assert names["Apple"] == "title" and names["NASA"] == "upper" and names["iPhone"] == "mixed"
    assert names["nyc"] == "lower" and names["2024"] == "digit" and names["."] == "other"


def test_count_tokens_includes_specials(tok: WindowTokenizer) -> None:
    assert tok.count_tokens(["", "apple tesla"]) == [2, 4]


@pytest.mark.parametrize(
    ("n", "span", "stride"),
    [(0, 10, 3), (1, 10, 3), (10, 10, 3), (11, 10, 3), (57, 10, 3), (1000, 126, 32), (127, 126, 0)],
)
def test_windows_cover_every_token_with_the_stride_as_overlap(n: int, span: int, stride: int) -> None:
    windows = plan_windows([n], span, stride)
    if n == 0:
        assert windows == []
        return
    assert windows[0].start == 0 and windows[-1].end == n
    assert all(0 < w.length <= span for w in windows)
    for a, b in zip(windows, windows[1:], strict=False):
        assert a.start < b.start and a.end - b.start >= stride and b.start <= a.end
    if n <= span:
        assert windows == [Window(0, 0, n)]


def test_windows_keep_their_text_index() -> None:
    windows = plan_windows([3, 0, 25], 10, 2)
    assert {w.text_index for w in windows} == {0, 2}
    assert [w for w in windows if w.text_index == 0] == [Window(0, 0, 3)]


def test_stride_must_leave_progress() -> None:
    with pytest.raises(ValueError):
        plan_windows([5], 10, 10)


def test_batches_are_bucketed_bounded_and_padded_per_batch(tok: WindowTokenizer) -> None:
    texts = [("word " * n).strip() for n in (1, 40, 3, 250, 7, 2, 90, 0, 5)]
    encoded = tok.encode(texts)
    windows = plan_windows([len(e) for e in encoded], 62, 16)
    batches = list(tok.make_batches(encoded, windows, max_batch_size=3, max_batch_tokens=150))
    seen = [w for b in batches for w in b.windows]
    assert sorted(seen, key=lambda w: (w.text_index, w.start)) == sorted(
        windows, key=lambda w: (w.text_index, w.start)
    )
    lengths = [w.length for w in seen]
    assert lengths == sorted(lengths)  # bucketed by length
    for b in batches:
        ids, mask = b.arrays["input_ids"], b.arrays["attention_mask"]
        rows, width = ids.shape
        assert rows <= 3 and (rows == 1 or rows * width <= 150)
        assert width == max(w.length for w in b.windows) + 2  # padded to its own longest row only
        assert set(b.arrays) == {"input_ids", "attention_mask", "token_type_ids", "shape_ids"}
        for row, w in enumerate(b.windows):
            k = w.length
            assert ids[row, 0] == tok.prefix_ids[0] and ids[row, k + 1] == tok.suffix_ids[0]
            assert ids[row, 1 : k + 1].tolist() == encoded[w.text_index].ids[w.start : w.end].tolist()
            assert mask[row].sum() == k + 2 and (ids[row, k + 2 :] == tok.pad_id).all()
            assert (
                b.arrays["shape_ids"][row, 1 : k + 1].tolist()
                == encoded[w.text_index].shapes[w.start : w.end].tolist()
            )
            assert b.arrays["shape_ids"][row, 0] == 0 and (b.arrays["shape_ids"][row, k + 1 :] == 0).all()


def test_batches_are_cut_where_padding_would_exceed_its_share(tok: WindowTokenizer) -> None:
    lengths = (30, 31, 32, 60, 61, 62, 100, 101)
    texts = [("word " * n).strip() for n in lengths]
    encoded = tok.encode(texts)
    windows = plan_windows([len(e) for e in encoded], 126, 16)
    unlimited = list(tok.make_batches(encoded, windows, max_batch_size=64, max_batch_tokens=1 << 20))
    assert len(unlimited) == 1
    batches = list(
        tok.make_batches(encoded, windows, max_batch_size=64, max_batch_tokens=1 << 20, max_padding=0.1)
    )
    assert [[w.text_index for w in b.windows] for b in batches] == [[0, 1, 2], [3, 4, 5], [6, 7]]
    for b in batches:
        mask = b.arrays["attention_mask"]
        assert 1 - mask.sum() / mask.size <= 0.1
    exact = list(
        tok.make_batches(encoded, windows, max_batch_size=64, max_batch_tokens=1 << 20, max_padding=0)
    )
    assert all(len({w.length for w in b.windows}) == 1 for b in exact)
