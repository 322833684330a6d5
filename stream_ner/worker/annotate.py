"""The pure core of the hot path: a batch of posts in, one ``EntityEvent`` per post out.

``annotate`` runs the model once for the whole batch and links brands in one pass; it has no I/O and
keeps the order of its input, so the runner can pair each event with its origin. A model with sentiment
heads (``has_sentiment``) is asked for ``analyze`` instead of ``predict``: the same entities, plus the
post's sentiment and each entity's, which the event carries; otherwise those fields stay ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from stream_ner.messages import EntityEvent, EntityMention, ModelRef, Origin, Post, event_tone
from stream_ner.model.entity import Entity, Sentiment


@dataclass(frozen=True, slots=True)
class Incoming:
    """A valid post with the Kafka coordinates it was read from."""

    post: Post
    origin: Origin


class Model(Protocol):
    """What the hot path needs of a NER model (``stream_ner.NerModel`` is one)."""

    name: str
    version: str
    has_sentiment: bool

    def predict(self, texts: list[str]) -> list[list[Entity]]:
        """Entities per text, in input order."""
        ...

    def analyze(self, texts: list[str]) -> Sequence[Analysed]:
        """Entities with their sentiment and the post's sentiment, per text, in input order."""
        ...


class Analysed(Protocol):
    """What the hot path reads of one ``stream_ner.Analysis``."""

    @property
    def entities(self) -> list[Entity]: ...  # noqa: D102

    @property
    def sentiment(self) -> Sentiment: ...  # noqa: D102


class Linker(Protocol):
    """What the hot path needs of a brand linker (``stream_ner.brands.BrandLinker`` is one)."""

    def link(self, texts: list[str], entities: list[list[Entity]]) -> Sequence[Links]:
        """Per post: brand id per entity (aligned) and the post's sorted brand ids."""
        ...


class Links(Protocol):
    """The linker's answer for one post."""

    @property
    def entity_brands(self) -> Sequence[str | None]: ...  # noqa: D102

    @property
    def brands(self) -> Sequence[str]: ...  # noqa: D102


def annotate(
    batch: list[Incoming], model: Model, linker: Linker | None, now: datetime | None = None
) -> list[EntityEvent]:
    """One event per incoming post, in order, also for posts without entities."""
    texts = [item.post.text for item in batch]
    moods: list[Sentiment | None]
    if model.has_sentiment:
        analyses = model.analyze(texts)
        entities = [a.entities for a in analyses]
        moods = [a.sentiment for a in analyses]
    else:
        entities = model.predict(texts)
        moods = [None] * len(texts)
    links = linker.link(texts, entities) if linker is not None else None
    ref = ModelRef(name=model.name, version=model.version)
    processed_at = now or datetime.now(UTC)
    events = []
    for i, (item, found, mood) in enumerate(zip(batch, entities, moods, strict=True)):
        post = item.post
        brands_of = links[i].entity_brands if links is not None else [None] * len(found)
        events.append(
            EntityEvent(
                post_id=post.id,
                text=post.text,
                entities=[EntityMention.of(e, b) for e, b in zip(found, brands_of, strict=True)],
                brands=list(links[i].brands) if links is not None else [],
                created_at=post.created_at,
                author=post.author,
                lang=post.lang,
                source=post.source,
                metadata=post.metadata,
                **event_tone(mood),
                model=ref,
                origin=item.origin,
                processed_at=processed_at,
            )
        )
    return events
