"""Logits to entities: window merge, subword aggregation, BIO/BIOES decoding, character spans. Pure numpy.

For one text the steps are (``decode_texts`` runs steps 2 and 3 once over the words of many texts, then
4 and 5 text by text; ``decode_text`` is it for one text):

1. ``merge_windows``: every token takes its logits from the window where it has the most context on
   both sides (overlaps are resolved per token, before decoding, so an entity is never found twice nor
   lost at a window edge).
2. ``aggregate_words``: the model's label offsets added to the logits (``offset_vector``: a log-prior
   shift toward a type the model under-predicts; none by default), softmax, then one probability vector
   per pre-tokenizer word from its subword tokens: ``first`` (the first subword's), ``average`` (the
   mean over subwords) or ``max`` (the subword whose best label is the most probable).
3. ``best_valid_tags``: each word's tag is its most probable label, unless that leaves an ``I-``/``E-``
   continuing no entity of its type; then the most probable sequence without one (Viterbi). Then
   ``decode_tags``: BIO or BIOES turns tags into word runs; a label change or ``O`` ends the open one.
4. ``compounds.join_units``: a hyphenated compound (``Coca-Cola``), a cashtag (``$TSLA``) and a possessive
   (``Wendy's``) are cut into several words by the pre-tokenizer; a run touching one grows to take it
   whole, runs that then overlap become one, and an upper-case cashtag the model left untagged is an ORG
   mention (rules in ``stream_ner.model.compounds``).
5. ``to_entities``: character spans from the words' token offsets, trimmed of leading and trailing
   whitespace and invisible format characters; a span without a letter or digit (a lone ``@`` or ``#``,
   an emoji) is no entity. An entity's ``score`` is the mean, over its tagged words, of the probability of
   each word's predicted tag; a span with no tagged word (an untagged cashtag) scores the mean, over its
   words, of the probability of not ``O``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from stream_ner.model.compounds import join_units
from stream_ner.model.entity import Entity

Aggregation = Literal["first", "average", "max"]
Scheme = Literal["BIO", "BIOES"]
AGGREGATIONS: tuple[str, ...] = ("first", "average", "max")
SCHEMES: tuple[str, ...] = ("BIO", "BIOES")

_PREFIX_ALIASES = {"L": "E", "U": "S"}  # BILOU spellings of BIOES
RULE_LABEL = "ORG"
"""Label of an upper-case cashtag the model left untagged (``compounds`` step 3), when the model has it."""


@dataclass(frozen=True, slots=True, eq=False)
class TagSet:
    """The label map as (prefix, type) per id: ``B-PER`` -> ``("B", "PER")``, ``O`` -> ``("O", "")``."""

    prefixes: tuple[str, ...]
    types: tuple[str, ...]
    outside: np.ndarray
    """Boolean mask of the ``O`` label ids."""
    transitions: np.ndarray
    """``[labels, labels]``: whether label ``b`` may follow label ``a`` in the scheme."""
    starts: np.ndarray
    """Labels a text may begin with (no ``I-``/``E-``)."""

    @classmethod
    def parse(cls, id2label: list[str], scheme: str) -> TagSet:
        """Validate the labels against the scheme; raise ``ValueError`` on a label it cannot produce."""
        if scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {scheme!r}; expected one of {SCHEMES}")
        allowed = {"O", "B", "I"} | ({"E", "S"} if scheme == "BIOES" else set())
        prefixes, types = [], []
        for label in id2label:
            prefix, _, kind = label.partition("-")
            prefix = _PREFIX_ALIASES.get(prefix, prefix)
            if prefix not in allowed or (prefix == "O") != (kind == ""):
                raise ValueError(f"label {label!r} does not fit the {scheme} scheme")
            prefixes.append(prefix)
            types.append(kind)
        if "O" not in prefixes:
            raise ValueError("the label map has no 'O' label")
        n = len(prefixes)
        inside = np.asarray([p in ("I", "E") for p in prefixes])
        transitions = np.ones((n, n), dtype=bool)
        for a in range(n):
            for b in np.flatnonzero(inside).tolist():
                transitions[a, b] = prefixes[a] in ("B", "I") and types[a] == types[b]
        return cls(
            tuple(prefixes), tuple(types), np.asarray([p == "O" for p in prefixes]), transitions, ~inside
        )


def offset_vector(tagset: TagSet, offsets: dict[str, float]) -> np.ndarray | None:
    """Per label id, the offset of its entity type (``B-`` and ``I-`` alike; ``O``: 0), or ``None`` if none.

    ``offsets`` maps entity types to values added to their tags' logits before the softmax; a type the
    label map does not have, or a value that is not finite, is a ``ValueError``.
    """
    known = {t for t in tagset.types if t}
    unknown = sorted(set(offsets) - known)
    if unknown:
        raise ValueError(f"label offsets for unknown types {unknown}; the model's types: {sorted(known)}")
    bad = {t: v for t, v in offsets.items() if not np.isfinite(v)}
    if bad:
        raise ValueError(f"label offsets must be finite numbers, not {bad}")
    if not any(offsets.values()):
        return None
    return np.asarray([offsets.get(t, 0.0) if t else 0.0 for t in tagset.types], dtype=np.float32)


def merge_windows(n_tokens: int, spans: list[tuple[int, int]], logits: list[np.ndarray]) -> np.ndarray:
    """One ``[n_tokens, labels]`` array from per-window logits ``[end - start, labels]``.

    A token covered by several windows takes the window where its distance to the nearer cut edge is the
    largest (an edge at the text's own start or end is no cut).
    """
    if len(spans) == 1:
        return logits[0]
    out = np.empty((n_tokens, logits[0].shape[-1]), dtype=logits[0].dtype)
    best = np.full(n_tokens, -1, dtype=np.int64)
    big = n_tokens + 1
    for (start, end), window in zip(spans, logits, strict=True):
        pos = np.arange(start, end)
        left = pos - start if start > 0 else np.full(end - start, big)
        right = end - 1 - pos if end < n_tokens else np.full(end - start, big)
        context = np.minimum(left, right)
        better = context > best[start:end]
        out[start:end][better] = window[better]
        best[start:end][better] = context[better]
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float32."""
    x = logits.astype(np.float32, copy=False)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def word_starts(word_ids: np.ndarray, text_starts: np.ndarray | None = None) -> np.ndarray:
    """Index of each word's first token; a ``-1`` token (literal special token) is a word of its own.

    ``text_starts`` (token indices) mark where the texts of a concatenation begin: a word never spans two.
    """
    if len(word_ids) == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.ones(len(word_ids), dtype=bool)
    change[1:] = (word_ids[1:] != word_ids[:-1]) | (word_ids[1:] == -1)
    if text_starts is not None:
        change[text_starts] = True
    return np.flatnonzero(change)


def aggregate_words(probs: np.ndarray, starts: np.ndarray, strategy: str) -> np.ndarray:
    """One probability vector per word (``[words, labels]``) from token probabilities ``[tokens, labels]``."""
    if strategy == "first":
        return probs[starts]
    if strategy == "average":
        sizes = np.diff(np.append(starts, len(probs)))
        return np.add.reduceat(probs, starts, axis=0) / sizes[:, None]
    if strategy == "max":
        best = probs.max(axis=-1)
        words = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(probs))))
        order = np.lexsort((-best, words))  # per word, most confident token first
        first_of_word = order[np.searchsorted(words[order], np.arange(len(starts)))]
        return probs[first_of_word]
    raise ValueError(f"unknown aggregation {strategy!r}; expected one of {AGGREGATIONS}")


def best_valid_tags(words: np.ndarray, tagset: TagSet, text_starts: np.ndarray | None = None) -> np.ndarray:
    """Per word, the label ids of the most probable tag sequence in which every entity has a start.

    An ``I-X`` or ``E-X`` may only follow ``B-X`` or ``I-X``: a model that tags a name's first word
    ``O`` or another type and the rest ``I-X`` has to choose between a span beginning there and no
    span, rather than have ``decode_tags`` cut or retype it. When each word's most probable label already
    makes such a sequence (most posts) that is the answer; otherwise Viterbi over the word log
    probabilities with those transitions forbidden (no other transition scores). A BIOES entity left
    unclosed is still ``decode_tags``' to end. ``text_starts`` (sorted word indices, the first 0) mark
    where the texts of a concatenation begin: each text is a sequence of its own, and the texts that need
    Viterbi run it together (``_viterbi_many``).
    """
    tags = words.argmax(axis=-1)
    if len(tags) == 0:
        return tags
    firsts = np.zeros(1, dtype=np.int64) if text_starts is None else text_starts
    fine = np.ones(len(tags), dtype=bool)  # fine[k]: word k may follow word k - 1 (or starts its text)
    fine[1:] = tagset.transitions[tags[:-1], tags[1:]]
    fine[firsts] = tagset.starts[tags[firsts]]
    invalid = np.unique(np.searchsorted(firsts, np.flatnonzero(~fine), side="right") - 1).tolist()
    if invalid:
        bounds = np.append(firsts, len(tags)).tolist()
        ranges = [(bounds[k], bounds[k + 1]) for k in invalid]
        for (a, b), fixed in zip(ranges, _viterbi_many([words[a:b] for a, b in ranges], tagset), strict=True):
            tags[a:b] = fixed
    return tags


def _viterbi_many(texts: Sequence[np.ndarray], tagset: TagSet) -> list[np.ndarray]:
    """Viterbi (``best_valid_tags``) of several texts' words at once: one step per word position for all.

    Each text's sums, maxima and back pointers are those it gets alone (a text that has ended keeps its
    scores while longer ones go on), so the tags are the same.
    """
    lengths = np.asarray([len(w) for w in texts])
    n, labels = int(lengths.max()), texts[0].shape[1]
    padded = np.ones((len(texts), n, labels), dtype=texts[0].dtype)
    for row, w in enumerate(texts):
        padded[row, : len(w)] = w
    scores = np.log(np.maximum(padded, 1e-12))
    forbid = np.where(tagset.transitions, 0.0, -np.inf)
    best = np.where(tagset.starts, scores[:, 0], -np.inf)
    back = np.zeros(padded.shape, dtype=np.int64)
    for i in range(1, n):
        total = best[:, :, None] + forbid
        back[:, i] = total.argmax(axis=1)
        going = (lengths > i)[:, None]
        best = np.where(going, total.max(axis=1) + scores[:, i], best)
    rows = np.arange(len(texts))
    out = np.zeros((len(texts), n), dtype=np.int64)
    current = best.argmax(axis=1)
    for i in range(n - 1, -1, -1):
        inside = lengths > i
        out[inside, i] = current[inside]
        if i:
            current = np.where(inside, back[rows, i, current], current)
    return [out[row, : len(w)] for row, w in enumerate(texts)]


def decode_tags(tags: np.ndarray, tagset: TagSet) -> list[tuple[int, int, str]]:
    """Word runs ``(first_word, last_word_exclusive, type)`` from per-word label ids, BIO or BIOES."""
    runs: list[tuple[int, int, str]] = []
    start, kind, last = -1, "", -2
    ids = tags.tolist()
    for i in np.flatnonzero(~tagset.outside[tags]).tolist():
        prefix, label = tagset.prefixes[ids[i]], tagset.types[ids[i]]
        continues = start >= 0 and i == last + 1 and label == kind and prefix in ("I", "E")
        if not continues:
            if start >= 0:
                runs.append((start, last + 1, kind))
            start, kind = i, label
        last = i
        if prefix in ("E", "S"):
            runs.append((start, i + 1, kind))
            start = -1
    if start >= 0:
        runs.append((start, last + 1, kind))
    return runs


def to_entities(
    text: str,
    runs: list[tuple[int, int, str]],
    word_start_chars: Sequence[int],
    word_end_chars: Sequence[int],
    word_scores: Sequence[float],
    tagged: Sequence[bool],
) -> list[Entity]:
    """Entities with trimmed character spans; a run without a letter or digit is dropped.

    A run's score is the mean of ``word_scores`` over its ``tagged`` words, or over all its words when
    none is tagged.
    """
    out = []
    for first, stop, label in runs:
        start, end = word_start_chars[first], word_end_chars[stop - 1]
        while start < end and _invisible(text[start]):
            start += 1
        while end > start and _invisible(text[end - 1]):
            end -= 1
        if any(c.isalnum() for c in text[start:end]):
            scores = [s for s, t in zip(word_scores[first:stop], tagged[first:stop], strict=True) if t]
            scores = scores or list(word_scores[first:stop])
            score = sum(scores) / len(scores)
            out.append(Entity(start=start, end=end, label=label, score=score, text=text[start:end]))
    return out


@dataclass(frozen=True, slots=True, eq=False)
class TextLogits:
    """One text and its merged token logits ``[tokens, labels]``.

    ``offsets`` are the tokens' character spans ``[tokens, 2]``, ``word_ids`` their words (``-1``: a
    literal special token), as ``decode_text`` takes them.
    """

    text: str
    logits: np.ndarray
    offsets: np.ndarray
    word_ids: np.ndarray


def decode_text(
    text: str,
    logits: np.ndarray,
    offsets: np.ndarray,
    word_ids: np.ndarray,
    tagset: TagSet,
    aggregation: str,
    shift: np.ndarray | None = None,
) -> list[Entity]:
    """Entities of one text from its merged token logits ``[tokens, labels]`` (steps 2-5 of the module).

    ``shift`` is ``offset_vector``'s result (``None``: no offsets).
    """
    return decode_texts([TextLogits(text, logits, offsets, word_ids)], tagset, aggregation, shift)[0]


def decode_texts(
    texts: Sequence[TextLogits], tagset: TagSet, aggregation: str, shift: np.ndarray | None = None
) -> list[list[Entity]]:
    """Entities of each text, in order: ``decode_text`` of each, with steps 2 and 3 run once for all.

    Softmax, word aggregation, tag choice, scores and word spans are array operations over the words of
    every text together (a text's values do not depend on the others); only texts whose tags leave an
    entity without a start get a Viterbi pass, and only texts with a tagged word or a ``$`` go through
    steps 4 and 5.
    """
    out: list[list[Entity]] = [[] for _ in texts]
    live = [i for i, t in enumerate(texts) if len(t.logits)]
    if not live:
        return out
    bounds = np.cumsum([0] + [len(texts[i].logits) for i in live])
    logits = np.concatenate([texts[i].logits for i in live])
    offsets = np.concatenate([texts[i].offsets for i in live])
    word_ids = np.concatenate([texts[i].word_ids for i in live])
    starts = word_starts(word_ids, bounds[:-1])
    if shift is not None:
        logits = logits + shift
    if aggregation == "first":  # only the first subwords' probabilities are read
        words = softmax(logits[starts])
    else:
        words = aggregate_words(softmax(logits), starts, aggregation)
    words[word_ids[starts] == -1] = tagset.outside  # a special token's word is outside any entity
    first_words = np.searchsorted(starts, bounds[:-1])
    word_bounds = np.append(first_words, len(starts)).tolist()
    tags = best_valid_tags(words, tagset, first_words)
    tagged = ~tagset.outside[tags]
    # a tagged word scores its tag's probability, an untagged one its probability of being in an entity
    picked = words[np.arange(len(tags)), tags]
    scores = np.where(tagged, picked, 1.0 - words[:, tagset.outside].sum(axis=-1)).astype(np.float64)
    char_starts = np.minimum.reduceat(offsets[:, 0], starts).tolist()
    char_ends = np.maximum.reduceat(offsets[:, 1], starts).tolist()
    any_tagged = np.logical_or.reduceat(tagged, first_words).tolist()
    score_list, tagged_list = scores.tolist(), tagged.tolist()
    types = [tagset.types[t] for t in tags.tolist()]
    rule = RULE_LABEL if RULE_LABEL in tagset.types else None
    for k, i in enumerate(live):
        text = texts[i].text
        if not any_tagged[k] and "$" not in text:  # only a cashtag can make an entity of untagged words
            continue
        a, b = word_bounds[k], word_bounds[k + 1]
        ws, we = char_starts[a:b], char_ends[a:b]
        runs = join_units(text, decode_tags(tags[a:b], tagset), ws, we, types[a:b], rule)
        out[i] = to_entities(text, runs, ws, we, score_list[a:b], tagged_list[a:b])
    return out


def _invisible(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) in ("Cf", "Cc")
