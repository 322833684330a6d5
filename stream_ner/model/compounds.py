"""Units a span takes whole or not at all: hyphenated compounds, cashtags and possessives. Pure.

The encoder's pre-tokenizer cuts ``Coca-Cola`` into the words ``Coca``, ``-``, ``Cola`` and ``$TSLA`` into
``$``, ``TSLA``, and the model tags each word, so BIO decoding alone can give ``Coca`` and ``-Cola`` as two
entities of two types, or ``AAPL`` without its ``$``. That split is what the model is trained on and stays;
``join_units`` repairs the decoded word runs instead:

1. A *unit* is a hyphenated compound (runs of letters or digits joined by ``-``, U+2010 or U+2011 with no
   space: ``Coca-Cola``, ``T-Mobile``, ``Jong-un``, ``Wi-Fi``), a cashtag (``$`` + 1 to 6 ASCII letters +
   an optional ``.`` and 1 or 2 letters, with no letter, digit, ``_`` or ``$`` right before or after it:
   ``$TSLA``, ``$BTC.X``) or a word with a possessive ``'s`` written onto it (``'`` or U+2019, then ``s``
   and no letter or digit: ``Wendy's``, ``Sainsbury's``, ``Google's``). Overlapping units are one unit
   (``Coca-Cola's``); nothing inside a URL is a unit (a slug such as ``rainn-wilson-and-friends-seattle``
   is no name).
2. A run that overlaps a unit grows to cover it, and runs that then overlap become one run: WNUT-17 and
   BTC annotate whole hyphenated tokens (``Kim Jong-un``, ``Terps-Illini``, ``German-based``), a
   cashtag is a mention like a handle, sigil included, and BTC keeps an ``'s`` written onto a name in its
   span (``Google’s``, ``Ben Bernanke’s``; a spaced `` 's`` stays outside, as in both corpora). The
   run's label is the most frequent type among its tagged words that have a letter or digit, ties going
   to the earliest such word.
3. A cashtag whose letters are all upper case and that no run touches is a run of ``rule_label`` (ORG):
   both training corpora leave cashtags unannotated, so the model hardly ever tags them. Lower-case ones
   (``$ave``) are left alone unless the model tags them.

A unit no run touches and that is no upper-case cashtag stays untagged (``Wi-Fi``, ``e-book``).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

Run = tuple[int, int, str]
"""``(first_word, last_word_exclusive, type)``, as ``decode.decode_tags`` gives them."""

HYPHENS = "-\u2010\u2011"
"""Hyphen-minus, hyphen and non-breaking hyphen; dashes (en, em) separate words and are not here."""

_COMPOUND = re.compile(rf"[^\W_]+(?:[{HYPHENS}][^\W_]+)+")
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?)(?![\w$])")
_POSSESSIVE = re.compile(r"[^\W_]+['\u2019]s(?![^\W_])", re.IGNORECASE)
_URL = re.compile(r"(?:[a-z][a-z0-9+.-]*://|www\.)\S+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Unit:
    """Characters ``[start, end)`` a span takes whole; ``rule`` marks an upper-case cashtag (step 3)."""

    start: int
    end: int
    rule: bool


def find_units(text: str) -> list[Unit]:
    """The units of ``text`` (step 1), sorted and with overlapping ones merged."""
    found = []
    if any(h in text for h in HYPHENS):
        found = [Unit(m.start(), m.end(), False) for m in _COMPOUND.finditer(text)]
    if "$" in text:
        found += [Unit(m.start(), m.end(), m.group(1).isupper()) for m in _CASHTAG.finditer(text)]
    if "'" in text or "\u2019" in text:
        found += [Unit(m.start(), m.end(), False) for m in _POSSESSIVE.finditer(text)]
    if found and ("/" in text or "www." in text.lower()):
        urls = [m.span() for m in _URL.finditer(text)]
        found = [u for u in found if not any(a < u.end and u.start < b for a, b in urls)]
    found.sort(key=lambda u: (u.start, u.end))
    merged: list[Unit] = []
    for unit in found:
        if merged and unit.start < merged[-1].end:
            last = merged[-1]
            merged[-1] = Unit(last.start, max(last.end, unit.end), last.rule or unit.rule)
        else:
            merged.append(unit)
    return merged


def join_units(
    text: str,
    runs: Sequence[Run],
    word_starts: Sequence[int],
    word_ends: Sequence[int],
    word_types: Sequence[str],
    rule_label: str | None,
) -> list[Run]:
    """``runs`` repaired by steps 2 and 3, sorted; runs touching no unit come back as they were.

    ``word_starts``/``word_ends`` are the words' character spans in ``text`` (in text order) and
    ``word_types`` their tagged type (``""`` for ``O``); ``rule_label`` ``None`` turns step 3 off.
    """
    units = find_units(text)
    if not units:
        return list(runs)
    intervals: list[tuple[int, int, str | None, bool]] = [(a, b, kind, False) for a, b, kind in runs]
    for unit in units:
        first, stop = _words_in(unit, word_starts, word_ends)
        if first < stop:
            intervals.append((first, stop, None, unit.rule))
    intervals.sort(key=lambda x: (x[0], x[1]))
    groups: list[list[tuple[int, int, str | None, bool]]] = []
    end = -1
    for item in intervals:
        if groups and item[0] < end:
            groups[-1].append(item)
            end = max(end, item[1])
        else:
            groups.append([item])
            end = item[1]
    joined = (_join_group(text, g, word_starts, word_ends, word_types, rule_label) for g in groups)
    return [run for run in joined if run is not None]


def _words_in(unit: Unit, starts: Sequence[int], ends: Sequence[int]) -> tuple[int, int]:
    """Indices ``[first, stop)`` of the words overlapping the unit's characters."""
    return bisect_right(ends, unit.start), bisect_left(starts, unit.end)


def _join_group(
    text: str,
    group: list[tuple[int, int, str | None, bool]],
    starts: Sequence[int],
    ends: Sequence[int],
    types: Sequence[str],
    rule_label: str | None,
) -> Run | None:
    first, stop = min(x[0] for x in group), max(x[1] for x in group)
    kinds = [x[2] for x in group if x[2] is not None]
    if not kinds:  # units only: step 3
        return (first, stop, rule_label) if rule_label and any(x[3] for x in group) else None
    if len(group) == 1:
        return group[0][0], group[0][1], kinds[0]
    votes: dict[str, int] = {}
    for i in range(first, stop):
        if types[i] and any(c.isalnum() for c in text[starts[i] : ends[i]]):
            votes[types[i]] = votes.get(types[i], 0) + 1
    label = max(votes, key=lambda k: votes[k]) if votes else kinds[0]  # max keeps the earliest of equals
    return first, stop, label
