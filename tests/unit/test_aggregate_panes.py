"""The pane core of the aggregator (``stream_ner.aggregate.panes``): counts, lateness, and exactness after
crashes simulated on its own write log."""

import random
from collections import defaultdict
from datetime import UTC, datetime

import pytest

from stream_ner.aggregate.mentions import BrandMention
from stream_ner.aggregate.panes import PaneState, iso_ms
from stream_ner.messages import BrandAggregate
from stream_ner.settings import AggregateSettings, WindowSpec

T0 = int(datetime(2024, 5, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)
WINDOWS = [WindowSpec(name="1m", size_s=60, step_s=60), WindowSpec(name="5m", size_s=300, step_s=60)]
SETTINGS = AggregateSettings(windows=WINDOWS, grace_s=10, samples=3, top_n=2)


def mention(post: str, brand: str, at_s: float, author: str | None = "al", source_offset: int = 0, **kw):
    fields = dict(mentions=1, sentiment=0.0, tone=(0, 0, 0), co_brands=(), co_entities=())
    fields.update(kw)
    return BrandMention(brand, post, T0 + int(at_s * 1000), author, source_offset=source_offset, **fields)


def records_of(mentions: list[BrandMention], sources: int = 1) -> list[tuple[int, list[BrandMention], int]]:
    return [(offset, [m], sources) for offset, m in enumerate(mentions)]


def batches(records, rng: random.Random):
    i = 0
    while i < len(records):
        n = rng.randint(1, 6)
        yield records[i : i + n]
        i += n


def test_counts_per_window_from_panes():
    stream = [
        mention(
            "p1",
            "nike",
            1,
            "al",
            0,
            mentions=2,
            sentiment=0.1,
            tone=(0, 2, 0),
            co_brands=("adidas",),
            co_entities=("PER:lebron",),
        ),
        mention("p2", "nike", 2, "bo", 1, sentiment=0.5, tone=(0, 0, 1), co_brands=("adidas",)),
        mention("p3", "nike", 3, "al", 2, sentiment=-1.0, tone=(1, 0, 0), co_brands=("puma",)),
        mention("p4", "nike", 61, "al", 3, co_brands=("zara",)),
    ]
    state = PaneState(0, SETTINGS)
    state.apply(records_of(stream))
    first = state.record(("1m", T0, "nike"))
    assert (first["mentions"], first["posts"], first["authors"]) == (4, 3, 2)
    assert first["co_brands"] == [{"id": "adidas", "count": 2}, {"id": "puma", "count": 1}]  # top 2
    assert first["co_entities"] == [{"id": "PER:lebron", "count": 1}]
    assert (first["sentiment_sum"], first["sentiment_count"], first["sentiment_mean"]) == (-0.4, 4, -0.1)
    assert (first["negative"], first["neutral"], first["positive"], first["net_sentiment"]) == (1, 2, 1, 0.0)
    later = state.record(("1m", T0 + 60_000, "nike"))
    assert (later["sentiment_mean"], later["net_sentiment"]) == (None, None)  # no sentiment is not neutral
    assert first["sample_post_ids"] == ["p1", "p2", "p3"]
    assert state.record(("1m", T0 + 60_000, "nike"))["posts"] == 1
    five = state.record(("5m", T0, "nike"))
    assert (five["posts"], five["authors"], five["mentions"]) == (4, 2, 5)
    assert five["co_brands"] == [{"id": "adidas", "count": 2}, {"id": "puma", "count": 1}]
    BrandAggregate.model_validate(five)  # the hot loop's plain dict is the wire contract
    assert BrandAggregate.model_validate(five).key() == f"nike|5m|{iso_ms(T0)}"


def test_a_hopping_mention_updates_one_pane_per_family():
    state = PaneState(0, SETTINGS)
    done = state.apply(records_of([mention("p1", "nike", 130, "al")]))
    panes = [k for k, v in done.writes if k.startswith('["pane"')]
    assert len(panes) == 2  # one 1m pane, one pane of the 5m family, though it has 5 windows
    assert len(done.changed) == 6  # 1 + 5 windows to emit


def test_a_mention_replayed_from_the_same_entities_position_counts_once():
    state = PaneState(0, SETTINGS)
    first = mention("p1", "nike", 1, "al", source_offset=7)
    done = state.apply([(0, [first], 1), (1, [first], 1)])  # stage one re-sent it after its own crash
    assert (done.counted, done.replayed) == (1, 1)
    assert state.record(("1m", T0, "nike"))["posts"] == 1


def test_a_record_after_a_gap_in_the_offsets_is_reported():
    state = PaneState(0, SETTINGS)
    records = records_of([mention(f"p{i}", "nike", i, source_offset=i) for i in range(4)])
    assert state.apply(records[:2]).gaps == []
    assert state.apply([records[3]]).gaps == [(2, 3)], "offset 2 was never applied"
    assert state.apply([records[2]]).gaps == [], "below the clock: rule 1 skips it, no new gap"
    assert state.record(("1m", T0, "nike"))["posts"] == 3


def test_every_partition_restores_its_own_clock_from_the_one_mapping_faust_restores_into():
    """A key shared by partitions would keep one partition's clock: the others would restore none, with
    rule 1 and the gap check off and the stream time lost."""
    table: dict = {}  # faust reads every changelog partition of a table into one mapping
    states = [PaneState(p, SETTINGS) for p in (0, 1)]
    for p, state in enumerate(states):
        stream = [mention(f"p{p}-{i}", f"brand{p}", i, source_offset=i) for i in range(3 + 2 * p)]
        table.update(state.apply(records_of(stream)).writes)
    for p, state in enumerate(states):
        restored = PaneState.restore(p, SETTINGS, [(k, v) for k, v in table.items() if v["partition"] == p])
        assert restored.clock == state.clock and restored.clock.offset == 2 + 2 * p


def test_a_clock_written_under_the_key_without_its_partition_is_still_restored():
    older = {"partition": 0, "offset": 4, "time_ms": T0, "sources": {"0": T0}}
    restored = PaneState.restore(0, SETTINGS, [('["clock"]', older)])
    assert (restored.clock.offset, restored.clock.time_ms) == (4, T0)


def test_late_mentions_count_within_grace_and_closed_windows_are_frozen():
    state = PaneState(0, SETTINGS)
    stream = [
        mention("p1", "nike", 1, source_offset=0),
        mention("p2", "nike", 65, source_offset=1),
        mention("p3", "nike", 50, source_offset=2),  # stream time 65 < 60 + 10: counted in [0, 60)
        mention("p4", "nike", 75, source_offset=3),  # stream time 75: [0, 60) closes, frozen
        mention("p5", "nike", 20, source_offset=4),  # late for [0, 60) but the 5m windows are open
    ]
    done = state.apply(records_of(stream))
    closed = state.record(("1m", T0, "nike"))
    assert closed["final"] and closed["posts"] == 2
    assert done.late_windows["1m"] == 1 and done.late == 0
    assert state.record(("5m", T0, "nike"))["posts"] == 5


def test_release_deletes_a_window_and_the_panes_nothing_else_needs():
    settings = AggregateSettings(windows=[WindowSpec(name="1m", size_s=60, step_s=60)], grace_s=0)
    state = PaneState(0, settings)
    state.apply(
        records_of([mention("p1", "nike", 1, source_offset=0), mention("p2", "adidas", 61, source_offset=1)])
    )
    window = ("1m", T0, "nike")
    assert state.record(window)["final"]
    writes = state.release(window)
    deleted = {k for k, v in writes if v is None}
    assert f'["final","1m",{T0},"nike"]' in deleted and f'["pane","1m",{T0},"nike"]' in deleted
    assert '["high","nike",0]' in deleted
    assert state.record(window) is None


def reference(mentions: list[BrandMention], specs: list[WindowSpec]) -> dict[tuple, dict]:
    """Brute-force counts per window, written independently of the stage (no late mentions)."""
    seen, acc = set(), {}
    for m in mentions:
        if (m.brand, m.post_id) in seen:
            continue
        seen.add((m.brand, m.post_id))
        for spec in specs:
            size, step = spec.size_s * 1000, spec.step_s * 1000
            last = m.time_ms - m.time_ms % step
            for start in range(last - size + step, last + 1, step):
                a = acc.setdefault(
                    (spec.name, start, m.brand),
                    {"posts": 0, "mentions": 0, "authors": set(), "co": defaultdict(int), "tone": [0, 0, 0]},
                )
                a["posts"] += 1
                a["mentions"] += m.mentions
                a["tone"] = [x + y for x, y in zip(a["tone"], m.tone, strict=True)]
                if m.author:
                    a["authors"].add(m.author)
                for other in m.co_brands:
                    a["co"][other] += 1
    return acc


def stream_of(n: int, seed: int, spread_s: float = 20.0) -> list[tuple[int, list[BrandMention], int]]:
    """Records of one partition: mentions from 2 entities partitions, some re-sent after a stage-one crash.

    As stage one does: a source partition's mentions go out in offset order, and a re-send repeats the
    last few that went out (never one still waiting to be sent).
    """
    rng = random.Random(seed)
    brands = ["nike", "adidas", "~acme robotics"]
    sent: list[BrandMention] = []
    offsets = [0, 0]
    records = []
    pending: list[BrandMention] = []
    for i in range(n):
        if sent and rng.random() < 0.08:  # stage one replays its last few mentions of one source
            source = rng.randrange(2)
            again = [m for m in sent if m.source == source and m not in pending][-rng.randint(1, 4) :]
            if again:
                records.append((len(records), again, 2))
            continue
        if pending and rng.random() < 0.5:  # a record holds the mentions of several posts
            records.append((len(records), pending, 2))
            pending = []
        source = rng.randrange(2)
        offsets[source] += rng.randint(1, 3)
        m = BrandMention(
            brand=rng.choice(brands),
            post_id=f"p{i}",
            time_ms=T0 + int(max(0.0, i * 2.0 + rng.uniform(-spread_s, 2)) * 1000),
            author=rng.choice(["al", "bo", "cy", None]),
            mentions=rng.choice([1, 1, 2]),
            **rng.choice(
                [
                    {"sentiment": 0.0, "tone": (0, 0, 0)},
                    {"sentiment": 0.5, "tone": (0, 0, 1)},
                    {"sentiment": -1.0, "tone": (1, 0, 0)},
                    {"sentiment": 0.0, "tone": (0, 1, 0)},
                ]
            ),
            co_brands=tuple(rng.sample(["zara", "puma", "apple"], rng.randint(0, 2))),
            co_entities=(),
            source=source,
            source_offset=offsets[source],
        )
        sent.append(m)
        pending.append(m)
    if pending:
        records.append((len(records), pending, 2))
    return records


def outputs(state: PaneState) -> dict[tuple, dict]:
    return {w: state.record(w) for w in state.windows()}


@pytest.mark.parametrize("seed", [3, 1, 8, 21])
def test_counts_equal_a_brute_force_recount(seed):
    settings = AggregateSettings(windows=WINDOWS, grace_s=3600, top_n=50)
    records = stream_of(300, seed=seed)
    state = PaneState(0, settings)
    for batch in batches(records, random.Random(1)):
        state.apply(batch)
    mentions = [m for _, ms, _ in records for m in ms]
    expected = reference(mentions, WINDOWS)
    got = outputs(state)
    assert set(got) == set(expected)
    for window, a in expected.items():
        r = got[window]
        assert (r["posts"], r["mentions"], r["authors"]) == (a["posts"], a["mentions"], len(a["authors"]))
        assert {c["id"]: c["count"] for c in r["co_brands"]} == dict(a["co"])
        assert [r["negative"], r["neutral"], r["positive"]] == a["tone"]


def replay_log(writes: list[tuple[str, object]], partition: int = 0) -> dict:
    """The table a restore reads: the last value per key, of the keys whose value names the partition."""
    table: dict = {}
    for key, value in writes:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return {k: v for k, v in table.items() if v.get("partition") == partition}


@pytest.mark.parametrize("seed", range(40))
def test_a_crash_anywhere_then_replay_from_the_last_commit_ends_exact(seed):
    """Kill at a random write; the changelog keeps a prefix at least up to the last commit; replay."""
    rng = random.Random(seed)
    records = stream_of(160, seed=seed, spread_s=30.0)
    clean = PaneState(0, SETTINGS)
    for batch in batches(records, random.Random(seed + 1)):
        clean.apply(batch)
    expected = outputs(clean)

    log: list = []
    first = PaneState(0, SETTINGS)
    committed_offset, committed_writes = 0, 0
    crash_at = rng.randint(1, len(records) - 1)
    position = 0
    for batch in batches(records[:crash_at], random.Random(seed + 2)):
        log.extend(first.apply(batch).writes)
        position = batch[-1][0] + 1
        if rng.random() < 0.3:  # a commit: producer flushed, offset stored
            committed_offset, committed_writes = position, len(log)
    durable = log[: rng.randint(committed_writes, len(log))]  # a prefix survives, at least to the commit
    restored = PaneState.restore(0, SETTINGS, replay_log(durable).items())
    for batch in batches(records[committed_offset:], random.Random(seed + 3)):
        assert restored.apply(batch).gaps == [], "a replay from the commit continues where the state ends"
    assert outputs(restored) == expected


def run_releasing(state: PaneState, records, rng: random.Random, log: list, emitted: dict) -> int:
    """Apply in batches; after each, write every changed window and release the final ones at once."""
    position = 0
    for batch in batches(records, rng):
        done = state.apply(batch)
        log.extend(done.writes)
        for window in done.changed:
            record = state.record(window)
            if record is not None and record["final"]:
                assert emitted.setdefault(window, record) == record, "a final record changed"
                log.extend(state.release(window))
        position = batch[-1][0] + 1
    return position


@pytest.mark.parametrize("seed", range(20))
def test_released_windows_stay_exact_across_a_crash(seed):
    rng = random.Random(seed)
    records = stream_of(160, seed=seed, spread_s=30.0)
    expected: dict = {}
    clean = PaneState(0, SETTINGS)
    run_releasing(clean, records, random.Random(seed + 1), [], expected)
    expected |= {w: clean.record(w) for w in clean.windows()}

    log: list = []
    emitted: dict = {}
    crash_at = rng.randint(1, len(records) - 1)
    committed = rng.randint(0, crash_at)
    first = PaneState(0, SETTINGS)
    run_releasing(first, records[:committed], random.Random(seed + 2), log, emitted)
    durable_from = len(log)
    run_releasing(first, records[committed:crash_at], random.Random(seed + 3), log, emitted)
    restored = PaneState.restore(0, SETTINGS, replay_log(log[: rng.randint(durable_from, len(log))]).items())
    for window in restored.windows():  # after a restore every held window is written again
        record = restored.record(window)
        if record["final"]:
            assert emitted.setdefault(window, record) == record
    run_releasing(restored, records[committed:], random.Random(seed + 4), [], emitted)
    emitted |= {w: restored.record(w) for w in restored.windows()}
    assert emitted == expected
    kept = PaneState(0, SETTINGS)
    kept.apply(records)
    assert len(restored.panes) < len(kept.panes), "released windows take their panes with them"


def test_the_co_mention_cap_of_a_pane_is_the_same_after_a_restore():
    settings = AggregateSettings(windows=WINDOWS, grace_s=3600, max_co_mentions=2, top_n=5)
    stream = [mention(f"p{i}", "nike", 1 + i, source_offset=i, co_brands=(f"b{i}",)) for i in range(4)]
    state = PaneState(0, settings)
    done = state.apply(records_of(stream))
    restored = PaneState.restore(0, settings, replay_log(done.writes).items())
    window = ("5m", T0, "nike")
    assert state.record(window)["co_brands"] == [{"id": "b0", "count": 1}, {"id": "b1", "count": 1}]
    assert restored.record(window) == state.record(window)
