"""The inference thread: annotates batches off the polling thread, so heartbeats and polls never stall.

Contract: every batch put into ``inbox`` comes back exactly once on ``outbox`` as an ``Annotated``, in
order: events for the posts the model handled and ``failures`` for posts it could not (a batch that fails
as a whole is retried post by post, so one poisonous post cannot sink its neighbours). ``None`` in the
inbox stops the thread.

The thread owns the worker's ``AnnotationCache`` (``worker.dedupe``), when there is one: no other thread
touches it. Each ``Annotated`` says how many of its posts were served without inference (``hits``) and
how many went through the model (``misses``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field

from stream_ner.messages import EntityEvent
from stream_ner.worker.annotate import Incoming, Linker, Model, annotate
from stream_ner.worker.dedupe import AnnotationCache

log = logging.getLogger(__name__)


@dataclass
class Annotated:
    """The outcome of one batch."""

    events: list[tuple[Incoming, EntityEvent]]
    failures: list[tuple[Incoming, str]] = field(default_factory=list)
    seconds: float = 0.0
    size: int = 0
    hits: int = 0
    misses: int = 0


class InferenceThread(threading.Thread):
    """Consumes ``list[Incoming]`` batches from ``inbox``, produces ``Annotated`` on ``outbox``."""

    def __init__(
        self,
        model: Model,
        linker: Linker | None,
        inbox: queue.Queue,
        outbox: queue.Queue,
        cache: AnnotationCache | None = None,
    ):
        super().__init__(name="inference", daemon=True)
        self.model, self.linker, self.inbox, self.outbox = model, linker, inbox, outbox
        self.cache = cache

    def run(self) -> None:
        """Serve batches until the ``None`` sentinel."""
        while (batch := self.inbox.get()) is not None:
            started = time.perf_counter()
            counted = (self.cache.hits, self.cache.misses) if self.cache is not None else (0, 0)
            result = self._annotate(batch, started)
            if self.cache is not None:
                result.hits, result.misses = self.cache.hits - counted[0], self.cache.misses - counted[1]
            self.outbox.put(result)

    def _annotate(self, batch: list[Incoming], started: float) -> Annotated:
        try:
            events = annotate(batch, self.model, self.linker, cache=self.cache)
            return Annotated(
                list(zip(batch, events, strict=True)), [], time.perf_counter() - started, len(batch)
            )
        except Exception:  # noqa: BLE001 - isolate the post that fails, keep serving
            log.exception("batch of %d failed; retrying post by post", len(batch))
        result = Annotated([], [], 0.0, len(batch))
        for item in batch:
            try:
                result.events.append((item, annotate([item], self.model, self.linker, cache=self.cache)[0]))
            except Exception as exc:  # noqa: BLE001
                result.failures.append((item, f"{type(exc).__name__}: {exc}"))
        result.seconds = time.perf_counter() - started
        return result
