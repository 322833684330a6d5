"""The pure core of the hot path: a batch of posts in, one ``EntityEvent`` per post out.

``annotate`` runs the model once for the whole batch and links brands in one pass; it has no I/O and
keeps the order of its input, so the runner can pair each event with its origin. A model with sentiment
heads (``has_sentiment``) is asked for ``analyze`` instead of ``predict``: the same entities, plus the
post's sentiment and each entity's, which the event carries; otherwise those fields stay ``None``.

Duplicate suppression sits in front of the model call: given an ``AnnotationCache`` (``worker.dedupe``),
a text already annotated, earlier or in the same batch, is not sent to the model again. The cache is
the only state ``annotate`` touches, and only when it is passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from stream_ner.messages import EntityEvent, EntityMention, ModelRef, Origin, Post, event_tone
from stream_ner.model.entity import Entity, Sentiment
from stream_ner.worker.dedupe import Annotation, AnnotationCache, text_key


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
    batch: list[Incoming],
    model: Model,
    linker: Linker | None,
    now: datetime | None = None,
    cache: AnnotationCache | None = None,
) -> list[EntityEvent]:
    """One event per incoming post, in order, also for posts without entities.

    Without a ``cache`` every text goes through the model. With one, each distinct text of the batch is
    looked up once; the model and the linker run only on the distinct texts not found, whose annotations
    are then stored, and every post of the batch is counted as a hit or a miss (``AnnotationCache.count``).
    Either way a post gets the same event: the model's output for a text does not depend on its batch.
    """
    texts = [item.post.text for item in batch]
    annotations = (
        annotate_texts(texts, model, linker) if cache is None else _through(cache, texts, model, linker)
    )
    ref = ModelRef(name=model.name, version=model.version)
    processed_at = now or datetime.now(UTC)
    return [_event(item, found, ref, processed_at) for item, found in zip(batch, annotations, strict=True)]


def annotate_texts(texts: list[str], model: Model, linker: Linker | None) -> list[Annotation]:
    """The model (one call) and the linker (one pass) on ``texts``: an ``Annotation`` per text, in order."""
    moods: list[Sentiment | None]
    if model.has_sentiment:
        analyses = model.analyze(texts)
        entities = [a.entities for a in analyses]
        moods = [a.sentiment for a in analyses]
    else:
        entities = model.predict(texts)
        moods = [None] * len(texts)
    links = linker.link(texts, entities) if linker is not None else None
    annotations = []
    for i, (found, mood) in enumerate(zip(entities, moods, strict=True)):
        brands_of = links[i].entity_brands if links is not None else [None] * len(found)
        annotations.append(
            Annotation(
                entities=tuple(EntityMention.of(e, b) for e, b in zip(found, brands_of, strict=True)),
                brands=tuple(links[i].brands) if links is not None else (),
                sentiment=mood,
            )
        )
    return annotations


def _through(
    cache: AnnotationCache, texts: list[str], model: Model, linker: Linker | None
) -> list[Annotation]:
    """``annotate_texts`` for the distinct texts ``cache`` lacks; the others from the cache or the batch."""
    keys = [text_key(model.name, model.version, text) for text in texts]
    known: dict[bytes, Annotation] = {}
    missing: dict[bytes, str] = {}
    for key, text in zip(keys, texts, strict=True):
        if key in known or key in missing:
            continue
        if (found := cache.get(key)) is not None:
            known[key] = found
        else:
            missing[key] = text
    if missing:
        computed = annotate_texts(list(missing.values()), model, linker)
        for key, annotation in zip(missing, computed, strict=True):
            cache.put(key, annotation)
            known[key] = annotation
    cache.count(hits=len(texts) - len(missing), misses=len(missing))
    return [known[key] for key in keys]


def _event(item: Incoming, found: Annotation, ref: ModelRef, processed_at: datetime) -> EntityEvent:
    post = item.post
    return EntityEvent(
        post_id=post.id,
        text=post.text,
        entities=list(found.entities),
        brands=list(found.brands),
        created_at=post.created_at,
        author=post.author,
        lang=post.lang,
        source=post.source,
        metadata=post.metadata,
        **event_tone(found.sentiment),
        model=ref,
        origin=item.origin,
        processed_at=processed_at,
    )
