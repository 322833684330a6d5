"""Texts to model inputs: one full-length encoding per text, sliding windows, length-bucketed padded batches.

The flow is ``encode`` (all texts, one ``encode_batch`` call, no truncation) -> ``plan_windows`` (token
ranges of at most the model's content length, overlapping by ``stride`` tokens) -> ``make_batches``
(windows sorted by length, cut into batches bounded by a post count and a token budget, each padded only
to its own longest row). Every window remembers where it came from, so logits can be put back per text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, pre_tokenizers

from stream_ner.errors import ModelError
from stream_ner.model.features import shape_ids

_PAD_TOKENS = ("[PAD]", "<pad>", "<PAD>")
SYMBOL_RUN = r"[\p{So}\p{Sk}][\p{So}\p{Sk}\p{Mn}\x{200D}]*"
"""Emoji and other symbols with their modifiers, joiners and variation selectors: a word of their own."""


@dataclass(frozen=True, slots=True, eq=False)
class Encoded:
    """One text tokenized in full, without special tokens.

    ``offsets`` are ``[n, 2]`` character spans into the original text; ``word_ids`` index the
    pre-tokenizer's words (``-1`` for a special token written literally in the text); ``shapes`` are the
    ``stream_ner.model.features`` shape classes, or ``None`` when the model does not take them.
    """

    text: str
    ids: np.ndarray
    offsets: np.ndarray
    word_ids: np.ndarray
    shapes: np.ndarray | None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, slots=True)
class Window:
    """Tokens ``[start, end)`` of text ``text_index``; a text has one window or several overlapping ones."""

    text_index: int
    start: int
    end: int

    @property
    def length(self) -> int:
        """Content tokens in the window (special tokens excluded)."""
        return self.end - self.start


@dataclass(frozen=True, slots=True, eq=False)
class Batch:
    """Padded inputs of some windows: row ``i`` has ``windows[i]``'s tokens at ``[prefix, prefix + length)``.

    ``arrays`` maps ``input_ids``, ``attention_mask``, ``token_type_ids`` and (when shapes were encoded)
    ``shape_ids`` to int64 ``[rows, padded_length]`` arrays.
    """

    windows: list[Window]
    arrays: dict[str, np.ndarray]
    prefix: int


class WindowTokenizer:
    """A fast tokenizer set up for windowed inference: no truncation, no padding, specials added by hand.

    Runs of emoji and other symbols (``SYMBOL_RUN``) are split off as words of their own before the
    tokenizer's own pre-tokenizer runs: a WordPiece vocabulary turns a whole word into ``[UNK]`` when it
    cannot spell one character, so ``London👍`` would otherwise hide ``London`` from the model.
    Training data is pre-split into words, where emoji are already separate.
    """

    def __init__(self, tokenizer: Tokenizer, *, with_shapes: bool) -> None:
        padding = tokenizer.padding
        self.pad_id = int(padding["pad_id"]) if padding else _find_pad_id(tokenizer)
        tokenizer.no_truncation()
        tokenizer.no_padding()
        isolate = pre_tokenizers.Split(Regex(SYMBOL_RUN), behavior="isolated")
        own = tokenizer.pre_tokenizer
        tokenizer.pre_tokenizer = isolate if own is None else pre_tokenizers.Sequence([isolate, own])
        self.tokenizer = tokenizer
        self.with_shapes = with_shapes
        probe = tokenizer.encode("a", add_special_tokens=True)
        content = [i for i, special in enumerate(probe.special_tokens_mask) if not special]
        if not content:
            raise ModelError("the tokenizer turns 'a' into special tokens only")
        self.prefix_ids = np.asarray(probe.ids[: content[0]], dtype=np.int64)
        self.suffix_ids = np.asarray(probe.ids[content[-1] + 1 :], dtype=np.int64)

    @classmethod
    def from_file(cls, path: Path, *, with_shapes: bool) -> WindowTokenizer:
        """Load ``tokenizer.json``; a file that is not a fast tokenizer is a ``ModelError``."""
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises plain Exception subclasses
            raise ModelError(f"cannot load tokenizer {path}: {exc}") from exc
        return cls(tokenizer, with_shapes=with_shapes)

    @property
    def specials(self) -> int:
        """Special tokens added around each window."""
        return len(self.prefix_ids) + len(self.suffix_ids)

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens per text as the model sees them (specials included, before windowing)."""
        return [
            len(e.ids) + self.specials for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)
        ]

    def encode(self, texts: list[str]) -> list[Encoded]:
        """Full-length encodings of ``texts``, in order (one ``encode_batch`` call)."""
        out = []
        for text, enc in zip(
            texts, self.tokenizer.encode_batch(texts, add_special_tokens=False), strict=True
        ):
            words = [-1 if w is None else w for w in enc.word_ids]
            shapes = None
            if self.with_shapes:
                shapes = np.asarray(shape_ids(text, enc.offsets, enc.word_ids), dtype=np.int64)
            out.append(
                Encoded(
                    text=text,
                    ids=np.asarray(enc.ids, dtype=np.int64),
                    offsets=np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2),
                    word_ids=np.asarray(words, dtype=np.int64),
                    shapes=shapes,
                )
            )
        return out

    def make_batches(
        self,
        encoded: list[Encoded],
        windows: list[Window],
        *,
        max_batch_size: int,
        max_batch_tokens: int,
        max_padding: float = 1.0,
    ) -> Iterator[Batch]:
        """Windows sorted by length and cut into padded batches.

        A batch holds at most ``max_batch_size`` rows and at most ``max_batch_tokens`` padded tokens
        (a single window always fits), so memory stays bounded for any number of texts. At most
        ``max_padding`` of a batch's positions are padding: a window that would push the share above it
        starts the next batch (1.0: no limit). Every padded position costs as much compute as a real one.
        """
        order = sorted(windows, key=lambda w: w.length)
        extra = self.specials
        chunk: list[Window] = []
        real = 0  # tokens of the windows in ``chunk``, specials included
        for window in order:
            width = window.length + extra  # the widest so far: windows come sorted
            padded = (len(chunk) + 1) * width
            if chunk and (
                len(chunk) >= max_batch_size
                or padded > max_batch_tokens
                or padded - real - width > max_padding * padded
            ):
                yield self._pad(encoded, chunk)
                chunk, real = [], 0
            chunk.append(window)
            real += width
        if chunk:
            yield self._pad(encoded, chunk)

    def _pad(self, encoded: list[Encoded], chunk: list[Window]) -> Batch:
        p, q = len(self.prefix_ids), len(self.suffix_ids)
        width = max(w.length for w in chunk) + p + q
        ids = np.full((len(chunk), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(chunk), width), dtype=np.int64)
        shapes = np.zeros((len(chunk), width), dtype=np.int64) if self.with_shapes else None
        for row, w in enumerate(chunk):
            enc, k = encoded[w.text_index], w.length
            ids[row, :p] = self.prefix_ids
            ids[row, p : p + k] = enc.ids[w.start : w.end]
            ids[row, p + k : p + k + q] = self.suffix_ids
            mask[row, : p + k + q] = 1
            if shapes is not None and enc.shapes is not None:
                shapes[row, p : p + k] = enc.shapes[w.start : w.end]
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        if shapes is not None:
            arrays["shape_ids"] = shapes
        return Batch(windows=chunk, arrays=arrays, prefix=p)


def plan_windows(lengths: list[int], span: int, stride: int) -> list[Window]:
    """Token windows covering every text: one per text that fits in ``span`` tokens, else overlapping ones.

    Consecutive windows of a long text share ``stride`` tokens (the last one is aligned to the text's
    end, so it may share more). Empty texts get no window.
    """
    if not 0 <= stride < span:
        raise ValueError(f"stride {stride} must be in [0, span {span})")
    step = span - stride
    windows = []
    for index, n in enumerate(lengths):
        if n <= span:
            if n:
                windows.append(Window(index, 0, n))
            continue
        starts = list(range(0, n - span, step)) + [n - span]
        windows.extend(Window(index, s, s + span) for s in starts)
    return windows


def _find_pad_id(tokenizer: Tokenizer) -> int:
    for token in _PAD_TOKENS:
        found = tokenizer.token_to_id(token)
        if found is not None:
            return found
    return 0
