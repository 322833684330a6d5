"""Token features a model may take besides ``input_ids``: pure functions shared by training and runtime.

An uncased encoder cannot see capitalisation, so a model may declare an extra ONNX input ``shape_ids``
(int64, ``[batch, sequence]``): the casing/shape class of the word each token belongs to. Training and the
runtime compute it with the same function, so they can never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

SHAPE_CLASSES: tuple[str, ...] = ("special", "lower", "upper", "title", "mixed", "digit", "other")
"""Index = class id. ``special``: padding and [CLS]/[SEP]; ``other``: no cased letter and no digit."""

_LOWER, _UPPER, _TITLE, _MIXED, _DIGIT, _OTHER = 1, 2, 3, 4, 5, 6


@lru_cache(maxsize=1 << 14)
def word_shape(word: str) -> int:
    """Shape class of one word as it is written in the original text.

    Memoised (a pure function): the 16,384 most recent distinct words, a few MB, bounded.
    """
    cased = [c for c in word if c.isalpha() and (c.isupper() or c.islower())]
    if not cased:
        return _DIGIT if any(c.isdigit() for c in word) else _OTHER
    upper = sum(c.isupper() for c in cased)
    if upper == 0:
        return _LOWER
    if upper == len(cased):
        return _UPPER if len(cased) > 1 else _TITLE
    if cased[0].isupper() and upper == 1:
        return _TITLE
    return _MIXED


def shape_ids(text: str, offsets: Sequence[tuple[int, int]], word_ids: Sequence[int | None]) -> list[int]:
    """Shape class per token: the class of the whole pre-tokenizer word the token belongs to.

    ``offsets`` are the tokens' character spans into ``text`` and ``word_ids`` their word indices
    (``None`` for special tokens and padding), as a ``tokenizers.Encoding`` gives them.
    """
    spans: dict[int, tuple[int, int]] = {}
    for (start, end), word in zip(offsets, word_ids, strict=True):
        if word is None:
            continue
        lo, hi = spans.get(word, (start, end))
        spans[word] = (min(lo, start), max(hi, end))
    shapes = {word: word_shape(text[lo:hi]) for word, (lo, hi) in spans.items()}
    return [0 if word is None else shapes[word] for word in word_ids]
