import random

from stream_ner.worker.offsets import OffsetTracker

TP = ("raw-posts", 0)


def test_nothing_to_store_until_the_first_record_completes():
    t = OffsetTracker()
    for offset in (10, 11, 12):
        t.track(TP, offset)
    assert t.committable() == {}
    t.complete(TP, 10)
    assert t.committable() == {TP: 11}
    assert t.committable() == {}  # only movements are reported


def test_a_gap_holds_the_watermark_back_until_it_fills():
    t = OffsetTracker()
    for offset in range(5):
        t.track(TP, offset)
    for offset in (1, 2, 4):
        t.complete(TP, offset)
    assert t.committable() == {}
    t.complete(TP, 0)
    assert t.committable() == {TP: 3}
    t.complete(TP, 3)
    assert t.committable() == {TP: 5}
    assert t.in_flight() == 0


def test_random_completion_order_never_stores_past_an_incomplete_record():
    rng = random.Random(7)
    t = OffsetTracker()
    offsets = list(range(200))
    for offset in offsets:
        t.track(TP, offset)
    rng.shuffle(offsets)
    completed: set[int] = set()
    stored = 0
    for offset in offsets:
        t.complete(TP, offset)
        completed.add(offset)
        stored = t.committable().get(TP, stored)
        assert all(o in completed for o in range(stored))  # everything below the stored offset is done
    assert stored == 200


def test_partitions_are_independent_and_forgotten_on_revoke():
    other = ("raw-posts", 1)
    t = OffsetTracker()
    t.track(TP, 0)
    t.track(other, 7)
    t.complete(other, 7)
    assert t.committable() == {other: 8}
    assert t.in_flight_of([TP]) == 1
    t.forget([TP])
    t.complete(TP, 0)  # a late acknowledgement of a revoked partition is ignored
    assert t.committable() == {}
    assert t.in_flight() == 0
