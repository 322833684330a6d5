"""Brand linking: a batch of posts and their entities in, canonical brand ids out.

``BrandLinker.link`` is pure and batch-shaped. Per post it makes one Aho-Corasick pass over the folded text
(``normalize.fold``: same length, so match offsets are offsets into the post) and keeps the matches that sit
on word boundaries: "Apple" is not found in "pineapple", while "@nike", "#nike", "$AAPL", "Nike's" and "NIKE"
are. Where matches overlap, the longest (then leftmost) wins. Then:

1. Every entity labelled ORG or PRODUCT (configurable) links to the brand whose spelling equals its text
   (trimmed of a possessive and of edge punctuation), else to the brand of the longest match overlapping it,
   else, when ``link_unknown`` is on, to ``~`` + its normalised surface form (``normalize.surface_id``), so
   emerging brands are aggregated too. Other entities link to nothing.
2. The post's brands are those of step 1, plus the brands of matches that overlap no entity at all (names,
   handles, hashtags and cashtags the model did not tag). A match inside an entity of another label (a PER
   or LOC) is trusted to the model and not counted. Ambiguous spellings count in untagged text only when
   capitalised (see ``catalog``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ahocorasick

from stream_ner.brands.catalog import Catalog, Spelling, load_catalog
from stream_ner.brands.normalize import fold, is_word_char, surface_id
from stream_ner.model.entity import Entity

DEFAULT_LABELS = ("ORG", "PRODUCT")


@dataclass(frozen=True, slots=True)
class Links:
    """The linker's answer for one post.

    ``entity_brands`` is aligned with the post's entities (``None``: not a brand); ``brands`` is the sorted,
    de-duplicated list of brand ids the post mentions.
    """

    entity_brands: tuple[str | None, ...]
    brands: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Match:
    """A catalog spelling found in a text: ``text[start:end]``, end exclusive."""

    start: int
    end: int
    spelling: Spelling


class BrandLinker:
    """Links entities and untagged mentions to catalog brand ids; build once, call ``link`` per batch."""

    def __init__(
        self, catalog: Catalog, *, link_unknown: bool = True, labels: Iterable[str] = DEFAULT_LABELS
    ) -> None:
        self.catalog = catalog
        self.link_unknown = link_unknown
        self.labels = frozenset(labels)
        self._automaton: Any = ahocorasick.Automaton()
        for key, spelling in catalog.spellings.items():
            self._automaton.add_word(key, (len(key), spelling))
        self._automaton.make_automaton()

    @classmethod
    def from_catalog(
        cls, path: Path | None = None, *, link_unknown: bool = True, labels: Iterable[str] = DEFAULT_LABELS
    ) -> BrandLinker:
        """A linker over the catalog at ``path`` (``None``: the shipped sample catalog)."""
        return cls(load_catalog(path), link_unknown=link_unknown, labels=labels)

    @classmethod
    def from_settings(cls, settings: Any) -> BrandLinker:
        """A linker configured by a ``BrandSettings``."""
        return cls.from_catalog(settings.catalog, link_unknown=settings.link_unknown, labels=settings.labels)

    def link(self, texts: list[str], entities: list[list[Entity]]) -> list[Links]:
        """One ``Links`` per post, in input order; ``entities[i]`` are spans of ``texts[i]``."""
        if len(texts) != len(entities):
            raise ValueError(f"{len(texts)} texts but {len(entities)} entity lists")
        return [self._link_one(text, found) for text, found in zip(texts, entities, strict=True)]

    def find(self, text: str) -> list[Match]:
        """Catalog spellings in ``text`` on word boundaries, non-overlapping, longest first, in text order."""
        folded = fold(text)
        candidates = []
        for last, (length, spelling) in self._automaton.iter(folded):
            start, end = last + 1 - length, last + 1
            if _on_boundaries(folded, start, end):
                candidates.append(Match(start, end, spelling))
        candidates.sort(key=lambda m: (m.start - m.end, m.start))
        taken: list[Match] = []
        for match in candidates:
            if all(match.end <= t.start or match.start >= t.end for t in taken):
                taken.append(match)
        return sorted(taken, key=lambda m: m.start)

    def _link_one(self, text: str, entities: list[Entity]) -> Links:
        matches = self.find(text)
        entity_brands = tuple(self._link_entity(e, matches) for e in entities)
        brands = {b for b in entity_brands if b is not None}
        for match in matches:
            if any(match.start < e.end and e.start < match.end for e in entities):
                continue
            if match.spelling.ambiguous and not _capitalised(text[match.start : match.end], match.spelling):
                continue
            brands.add(match.spelling.brand)
        return Links(entity_brands, tuple(sorted(brands)))

    def _link_entity(self, entity: Entity, matches: list[Match]) -> str | None:
        # 1. ORG/PRODUCT only: exact spelling, else the longest overlapping match, else the surface form.
        if entity.label not in self.labels:
            return None
        surface = surface_id(entity.text)
        if surface is None:
            return None
        exact = self.catalog.spellings.get(surface.removeprefix("~")) or self.catalog.spellings.get(
            fold(entity.text).strip()
        )
        if exact is not None:
            return exact.brand
        overlapping = [m for m in matches if m.start < entity.end and entity.start < m.end]
        if overlapping:
            return max(overlapping, key=lambda m: m.end - m.start).spelling.brand
        return surface if self.link_unknown else None


def _on_boundaries(folded: str, start: int, end: int) -> bool:
    before = folded[start - 1] if start > 0 else " "
    after = folded[end] if end < len(folded) else " "
    if is_word_char(after):
        return False
    if folded[start] in "@#$":
        return not is_word_char(before) and before not in "@#$"
    return not is_word_char(before)


def _capitalised(found: str, spelling: Spelling) -> bool:
    return found == spelling.written or found.isupper() or (found[:1].isupper() and found[1:2].islower())
