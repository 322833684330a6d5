"""Duplicate suppression: a repeated text skips the model and still gets the event recomputation gives."""

from __future__ import annotations

import json
import queue
from datetime import UTC, datetime
from importlib import resources

import pytest

from stream_ner.brands import BrandLinker
from stream_ner.messages import Origin, Post
from stream_ner.model.runtime import NerModel
from stream_ner.settings import load_settings
from stream_ner.worker.annotate import Incoming, annotate
from stream_ner.worker.dedupe import Annotation, AnnotationCache, text_key
from stream_ner.worker.inference import InferenceThread
from tests.unit.test_sentiment import build_sentiment_artifact

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def model() -> NerModel:
    return NerModel.load(intra_op_threads=1)


@pytest.fixture(scope="module")
def linker() -> BrandLinker:
    return BrandLinker.from_catalog()


@pytest.fixture(scope="module")
def samples() -> list[str]:
    text = (resources.files("stream_ner") / "samples" / "posts.jsonl").read_text(encoding="utf-8")
    return [json.loads(line)["text"] for line in text.splitlines() if line.strip()]


class Counting:
    """A real model that records the texts it is asked about."""

    def __init__(self, model: NerModel, version: str | None = None) -> None:
        self.model, self.name, self.version = model, model.name, version or model.version
        self.has_sentiment = model.has_sentiment
        self.seen: list[str] = []

    def predict(self, texts):
        self.seen += texts
        return self.model.predict(texts)

    def analyze(self, texts):
        self.seen += texts
        return self.model.analyze(texts)


def _batch(texts: list[str], first_id: int = 0) -> list[Incoming]:
    return [
        Incoming(
            Post(id=f"p{first_id + i}", text=t, author="amy"),
            Origin(topic="raw-posts", partition=0, offset=first_id + i, timestamp_ms=1),
        )
        for i, t in enumerate(texts)
    ]


def _repeating(texts: list[str]) -> list[str]:
    """Every text, with repeats within the list (adjacent and far apart)."""
    return [*texts, *texts[::3], texts[0], texts[0]]


def test_with_the_shipped_model_repeats_get_exactly_the_events_of_running_every_text(model, linker, samples):
    texts = _repeating(samples)
    batch = _batch(texts)
    counting = Counting(model)
    cache = AnnotationCache(1000)
    cached = annotate(batch[:40], counting, linker, NOW, cache) + annotate(
        batch[40:], counting, linker, NOW, cache
    )
    every = annotate(batch, model, linker, NOW)
    assert [e.model_dump() for e in cached] == [e.model_dump() for e in every]
    assert sum(bool(e.entities) for e in every) > len(samples) // 2 and any(e.brands for e in every)
    assert sorted(counting.seen) == sorted(set(texts)), "each distinct text went through the model once"
    assert (cache.hits, cache.misses) == (len(texts) - len(set(texts)), len(set(texts)))


def test_with_sentiment_heads_the_cached_event_keeps_the_post_and_entity_sentiment(tmp_path, linker):
    model = NerModel.load(build_sentiment_artifact(tmp_path / "m"), intra_op_threads=1)
    texts = ["nike shoes are good in london", "bad day with apple", "nike shoes are good in london"]
    cache = AnnotationCache(10)
    cached = annotate(_batch(texts), model, linker, NOW, cache) + annotate(
        _batch(texts), model, linker, NOW, cache
    )
    every = annotate(_batch(texts + texts), model, linker, NOW)
    assert [e.model_dump(exclude={"post_id", "origin"}) for e in cached] == [
        e.model_dump(exclude={"post_id", "origin"}) for e in every
    ]
    assert all(e.sentiment is not None for e in cached)
    assert any(m.sentiment is not None for e in cached for m in e.entities)
    assert (cache.hits, cache.misses) == (4, 2)


def test_a_batch_counts_each_post_once_as_hit_or_miss(model):
    counting, cache = Counting(model), AnnotationCache(10)
    annotate(_batch(["Nike in London", "Adidas", "Nike in London"]), counting, None, NOW, cache)
    assert (cache.hits, cache.misses) == (1, 2) and counting.seen == ["Nike in London", "Adidas"]
    annotate(_batch(["Adidas", "Puma"]), counting, None, NOW, cache)
    assert (cache.hits, cache.misses) == (2, 3) and counting.seen[2:] == ["Puma"]


def test_another_model_version_never_reads_the_entries_of_the_first(model):
    cache, text = AnnotationCache(10), "Just got the new @Nike Air Max in London"
    annotate(_batch([text]), Counting(model), None, NOW, cache)
    upgraded = Counting(model, version="next")
    [event] = annotate(_batch([text]), upgraded, None, NOW, cache)
    assert upgraded.seen == [text] and event.model.version == "next"
    assert (cache.hits, cache.misses) == (0, 2)


def test_the_key_is_the_exact_text_under_one_model():
    key = text_key("m", "1", "Apple  pie ")
    assert key == text_key("m", "1", "Apple  pie ") and len(key) == 16
    others = ["apple  pie ", "Apple pie ", "Apple  pie", "Apple\u00a0 pie "]
    assert len({key, *(text_key("m", "1", t) for t in others)}) == 5
    assert key not in {text_key("m", "2", "Apple  pie "), text_key("m1", "", "Apple  pie ")}
    assert text_key("m", "1", "lone \ud83d surrogate")  # JSON can carry them; still a key


def test_the_least_recently_used_entry_is_evicted():
    cache = AnnotationCache(2)
    a, b, c = (Annotation((), (name,), None) for name in "abc")
    cache.put(b"a", a)
    cache.put(b"b", b)
    assert cache.get(b"a") is a  # a is now the most recent
    cache.put(b"c", c)
    assert len(cache) == 2 and cache.get(b"b") is None and cache.get(b"a") is a and cache.get(b"c") is c
    with pytest.raises(ValueError):
        AnnotationCache(0)


def test_the_inference_thread_reports_hits_and_misses_per_batch(model):
    inbox, outbox = queue.Queue(), queue.Queue()
    thread = InferenceThread(model, None, inbox, outbox, AnnotationCache(10))
    thread.start()
    inbox.put(_batch(["Nike", "Nike", "Apple"]))
    inbox.put(_batch(["Apple", "Tesla"]))
    inbox.put(None)
    first, second = outbox.get(timeout=60), outbox.get(timeout=60)
    thread.join(10)
    assert (first.hits, first.misses, second.hits, second.misses) == (1, 2, 1, 1)


def test_the_cache_size_is_a_worker_setting_and_zero_turns_it_off(monkeypatch):
    assert load_settings().worker.dedupe_cache_size > 0
    monkeypatch.setenv("STREAM_NER_WORKER__DEDUPE_CACHE_SIZE", "0")
    assert load_settings().worker.dedupe_cache_size == 0
