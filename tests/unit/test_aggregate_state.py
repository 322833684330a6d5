"""The exactness argument of ``stream_ner.aggregate.state``, checked by simulating crashes on a write log."""

import random
from datetime import UTC, datetime

from stream_ner.aggregate.model import BrandMention
from stream_ner.aggregate.state import Aggregator, clock_key, is_window_key, key
from stream_ner.aggregate.windows import Window, windows_of
from stream_ner.settings import AggregateSettings, WindowSpec

T0 = int(datetime(2024, 5, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)
SETTINGS = AggregateSettings(
    windows=[WindowSpec(name="1m", size_s=60, step_s=60), WindowSpec(name="5m", size_s=300, step_s=60)],
    grace_s=10,
)


def mention(post: str, brand: str, at_s: float, author: str | None = "al", **kw) -> BrandMention:
    fields = dict(mentions=1, sentiment=None, co_brands=(), co_entities=())
    fields.update(kw)
    return BrandMention(brand, post, T0 + int(at_s * 1000), author, **fields)


def run(stream: list[BrandMention], store: dict | None = None, first_offset: int = 0) -> dict:
    store = {} if store is None else store
    agg = Aggregator(SETTINGS)
    for offset, m in enumerate(stream[first_offset:], start=first_offset):
        agg.apply(store, m, 0, offset)
    return store


def window(store: dict, name: str, start_s: int, brand: str) -> dict:
    return store[key("w", name, T0 + start_s * 1000, brand)]


def test_windows_are_aligned_and_hopping_windows_overlap():
    specs = SETTINGS.windows
    found = windows_of(T0 + 61_000, specs)
    assert Window("1m", T0 + 60_000, T0 + 120_000) in found
    assert [w for w in found if w.name == "5m"] == [
        Window("5m", T0 + s * 1000, T0 + s * 1000 + 300_000) for s in (-180, -120, -60, 0, 60)
    ]
    assert all(w.start <= T0 + 61_000 < w.end for w in found)


def test_counts_per_window_posts_authors_mentions_and_co_mentions():
    stream = [
        mention("p1", "nike", 1, "al", mentions=2, co_brands=("adidas",), co_entities=("PER:lebron",)),
        mention("p2", "nike", 2, "bo", sentiment=0.5, co_brands=("adidas",)),
        mention("p3", "nike", 3, "al", sentiment=-1.0),
        mention("p4", "nike", 61, "al"),
    ]
    store = run(stream)
    first = window(store, "1m", 0, "nike")
    assert (first["mentions"], first["posts"], first["authors"]) == (4, 3, 2)
    assert first["co_brands"] == {"adidas": 2} and first["co_entities"] == {"PER:lebron": 1}
    assert (first["sentiment_sum"], first["sentiment_count"]) == (-0.5, 2)
    assert first["samples"] == ["p1", "p2", "p3"]
    assert window(store, "1m", 60, "nike")["posts"] == 1
    assert window(store, "5m", 0, "nike")["posts"] == 4  # [0, 300) holds all four
    record = Aggregator(SETTINGS).snapshot(key("w", "1m", T0, "nike"), first, T0 + 61_000)
    assert record.posts == 3 and not record.final and record.key() == "nike|1m|2024-05-01T12:00:00Z"
    assert Aggregator(SETTINGS).snapshot(key("w", "1m", T0, "nike"), first, T0 + 70_000).final


def test_duplicate_posts_count_once():
    stream = [mention("p1", "nike", 1), mention("p2", "nike", 2), mention("p1", "nike", 1)]
    store = run(stream)
    assert window(store, "1m", 0, "nike")["posts"] == 2
    assert window(store, "1m", 0, "nike")["mentions"] == 2


def test_late_events_count_within_grace_and_are_dropped_beyond():
    agg = Aggregator(SETTINGS)
    store: dict = {}
    agg.apply(store, mention("p1", "nike", 1), 0, 0)
    agg.apply(store, mention("p2", "nike", 65), 0, 1)  # stream time 65 s: [0, 60) is in its grace
    inside = agg.apply(store, mention("p3", "nike", 59), 0, 2)
    assert inside.late == {} and window(store, "1m", 0, "nike")["posts"] == 2
    agg.apply(store, mention("p4", "nike", 75), 0, 3)  # stream time 75 s >= 60 + 10: [0, 60) is closed
    beyond = agg.apply(store, mention("p5", "nike", 30), 0, 4)
    assert beyond.late == {
        "1m": 1,
        "5m": 1,
    }  # [-240 s, 60 s) is closed too; the four later 5m windows count it
    assert window(store, "1m", 0, "nike")["posts"] == 2
    assert window(store, "5m", 0, "nike")["posts"] == 5


class WriteLog(dict):
    """A dict that records every write, like a changelog topic."""

    def __init__(self):
        super().__init__()
        self.log: list[tuple[str, object]] = []
        self.commits: list[tuple[int, int]] = []  # (offset committed, log length at that point)

    def __setitem__(self, k, v):
        super().__setitem__(k, v)
        self.log.append((k, v))

    def __delitem__(self, k):
        super().__delitem__(k)
        self.log.append((k, None))


def restore(log: list[tuple[str, object]]) -> WriteLog:
    store = WriteLog()
    for k, v in log:
        if v is None:
            del store[k]
        else:
            store[k] = v
    return store


def random_stream(rng: random.Random, n: int) -> list[BrandMention]:
    stream = []
    for i in range(n):
        if stream and rng.random() < 0.15:
            stream.append(rng.choice(stream))  # an upstream duplicate, possibly much later
            continue
        at = i * 2 + rng.uniform(-30, 5)  # some late, some beyond grace
        brand = rng.choice(["nike", "adidas", "~acme"])
        stream.append(
            mention(
                f"p{i}",
                brand,
                at,
                rng.choice(["al", "bo", "cy", None]),
                sentiment=rng.choice([None, 0.5, -0.25]),
                co_brands=tuple(rng.sample(["x", "y"], rng.randint(0, 2))),
                source=rng.randint(0, 1),
                sources=2,
            )
        )
    return stream


def test_crash_anywhere_then_replay_from_the_committed_offset_gives_the_exact_state():
    rng = random.Random(7)
    for _ in range(60):
        stream = random_stream(rng, 120)
        expected = run(stream)
        # First run: commit every few records; crash at a random write; the changelog keeps a prefix of the
        # writes that is at least everything before the last commit.
        agg = Aggregator(SETTINGS)
        store = WriteLog()
        committed, at_commit = 0, 0
        crash_at = rng.randint(1, 400)
        for offset, m in enumerate(stream):
            agg.apply(store, m, 0, offset)
            if rng.random() < 0.2:
                committed, at_commit = offset + 1, len(store.log)
            if len(store.log) >= crash_at:
                break
        durable = rng.randint(at_commit, len(store.log))
        recovered = restore(store.log[:durable])
        replayed = run(stream, recovered, first_offset=committed)
        assert dict(replayed) == expected


def test_replaying_everything_twice_changes_nothing():
    stream = random_stream(random.Random(3), 200)
    once = run(stream)
    twice = run(stream, dict(once))
    assert twice == once
    assert sum(1 for k in once if is_window_key(k)) > 0
    assert once[clock_key(0)]["o"] == 199


def test_stream_time_waits_for_every_source_partition_so_a_fast_one_closes_nothing():
    agg = Aggregator(SETTINGS)
    store: dict = {}
    # source 0 is consumed far ahead of source 1: its posts at 0..200 s arrive first
    for offset, at in enumerate(range(0, 200, 20)):
        agg.apply(store, mention(f"a{at}", "nike", at, source=0, sources=2), 0, offset)
    assert agg.stream_time(store, 0) is None  # source 1 not seen yet: nothing is late
    done = agg.apply(store, mention("b5", "nike", 5, source=1, sources=2), 0, 100)
    assert done.late == {} and window(store, "1m", 0, "nike")["posts"] == 4
    assert done.stream_time == T0 + 5_000  # the slowest source sets the stream time
    done = agg.apply(store, mention("b90", "nike", 90, source=1, sources=2), 0, 101)
    assert done.stream_time == T0 + 90_000
    late = agg.apply(store, mention("b6", "nike", 6, source=1, sources=2), 0, 102)
    assert late.late["1m"] == 1  # 90 s >= 60 s + 10 s grace: [0, 60) is closed now
