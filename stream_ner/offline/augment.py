"""Mention replacement: training posts with their entity names swapped for other names of the same type.

A model that has seen "Zara" only as a person learns the name, not the context. Replacing each entity of
a post with a name drawn from the other entities of that type in the training data (Dai and Adel 2020,
"An analysis of simple data augmentation for named entity recognition") keeps the context and the gold
types and changes the names, so the tagger has to read the context.

Rules, all exact on the gold spans:

- only names from the same training split are drawn (never the dev data, never the brand catalog: the
  unseen-entity measure stays honest), from entities of the same label, other than the one replaced;
- @-handles, #hashtags and $cashtags are kept as written (their form, not their context, marks them),
  also where a corpus labels the name after the ``@``;
- a post keeps its corpus, so its label mask and @-mention convention are unchanged;
- the result is deterministic for a given ``random.Random``.
"""

from __future__ import annotations

import random
from collections import defaultdict

from stream_ner.offline.data import Record

MAX_NAME_CHARS = 40
"""Longer gold spans (usually annotation slips over a whole clause) are neither drawn nor replaced."""


def name_pool(records: list[Record]) -> dict[str, list[str]]:
    """Distinct entity surfaces per label, in first-seen order (handles, hashtags and cashtags left out)."""
    pool: dict[str, dict[str, None]] = defaultdict(dict)
    for record in records:
        for start, end, label in record.spans:
            surface = record.text[start:end]
            if _replaceable(surface):
                pool[label][surface] = None
    return {label: list(names) for label, names in pool.items()}


def replace_mentions(
    record: Record, pool: dict[str, list[str]], rng: random.Random, tag: str
) -> Record | None:
    """``record`` with every replaceable entity swapped for another name of its label.

    ``None`` when none was replaceable. Spans shift with the new lengths; the id gains ``~tag``.
    """
    pieces: list[str] = []
    spans: list[tuple[int, int, str]] = []
    cursor = shift = 0
    replaced = False
    for start, end, label in sorted(record.spans):
        if start < cursor:  # overlapping gold spans: keep the post as it is
            return None
        surface = record.text[start:end]
        names = pool.get(label, [])
        new = surface
        marked = start > 0 and record.text[start - 1] in "@#$"  # a handle labelled without its @
        if _replaceable(surface) and not marked and len(names) > 1:
            while new == surface:
                new = names[rng.randrange(len(names))]
            replaced = True
        pieces.append(record.text[cursor:start])
        pieces.append(new)
        spans.append((start + shift, start + shift + len(new), label))
        shift += len(new) - len(surface)
        cursor = end
    if not replaced:
        return None
    pieces.append(record.text[cursor:])
    return Record(f"{record.id}~{tag}", "".join(pieces), tuple(spans), record.source)


def replaced_sample(
    records: list[Record], pool: dict[str, list[str]], count: int, rng: random.Random, tag: str
) -> list[Record]:
    """Up to ``count`` posts drawn without repeats from those with a replaceable entity, names swapped."""
    candidates = [r for r in records if any(_replaceable(r.text[s:e]) for s, e, _ in r.spans)]
    out = []
    for record in rng.sample(candidates, min(count, len(candidates))):
        new = replace_mentions(record, pool, rng, tag)
        if new is not None:
            out.append(new)
    return out


def _replaceable(surface: str) -> bool:
    return bool(surface.strip()) and surface[0] not in "@#$" and len(surface) <= MAX_NAME_CHARS
