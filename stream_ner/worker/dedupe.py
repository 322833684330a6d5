"""Duplicate suppression: a bounded LRU of what the model and the linker said about a text.

Social streams repeat themselves (retweets, copy-pasted promotions); a repeated text need not go through
the model again. ``AnnotationCache`` maps a text's key to its ``Annotation`` (entities with their
sentiment, brand links, the post's sentiment): everything of an ``EntityEvent`` that depends on the text.
An event rebuilt from it is the one recomputation would give, since the shipped graphs give a text the same
output whatever batch it runs in (``tests/unit/test_batch_independence.py``); only the post's own fields
(id, author, times, origin) differ.

**Key.** A 128-bit BLAKE2b digest of the model's name and version and the text exactly as received: a
model with another name or version never reads another's entries (and a worker builds one cache per model
instance anyway). No normalisation is applied, on purpose. Case folding would merge texts the model tells
apart (``apple`` and ``Apple``). NFC, collapsing whitespace and stripping would merge texts of different
lengths, and an event's entities are character offsets into its own text: serving ``"Nike  Air Max"``
from ``"Nike Air Max"`` would give wrong offsets and a different entity text, and remapping them would
rest on the model, its decoder (which reads the characters between tokens to join hyphenated names,
cashtags and handles) and the linker being invariant to those edits, which nothing guarantees. The digest
keeps an entry's memory independent of the text's length, so no length limit is needed; a collision
needs about 2^64 texts.

**Threads.** Not thread-safe: only the inference thread touches a worker's cache (``InferenceThread``).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from stream_ner.messages import EntityMention
from stream_ner.model.entity import Sentiment


@dataclass(frozen=True, slots=True)
class Annotation:
    """What the model and the linker said about one text; with a post, it makes the post's event."""

    entities: tuple[EntityMention, ...]
    brands: tuple[str, ...]
    sentiment: Sentiment | None


def text_key(model_name: str, model_version: str, text: str) -> bytes:
    """The cache key of ``text`` under a model: a digest of the model's identity and the exact text."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (model_name, model_version, text):
        raw = part.encode("utf-8", "surrogatepass")  # JSON may carry lone surrogates
        digest.update(len(raw).to_bytes(8, "big") + raw)
    return digest.digest()


class AnnotationCache:
    """At most ``max_entries`` annotations, the least recently used evicted first.

    ``hits`` and ``misses`` count posts since creation, as ``annotate`` reports them (``count``): a hit
    is a post whose annotation was not computed for it (found here, or computed for an earlier post of
    the same batch), a miss one that went through the model. The owner turns them into metrics.
    """

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("a cache holds at least one entry; use no cache to turn it off")
        self.max_entries = max_entries
        self.hits = self.misses = 0
        self._entries: OrderedDict[bytes, Annotation] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> Annotation | None:
        """The annotation stored under ``key`` (now the most recently used), or None."""
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: bytes, annotation: Annotation) -> None:
        """Store ``annotation`` under ``key``, evicting the least recently used entry when full."""
        self._entries[key] = annotation
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def count(self, hits: int, misses: int) -> None:
        """Add one batch's posts served without and with inference."""
        self.hits += hits
        self.misses += misses
