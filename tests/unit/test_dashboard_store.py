"""The Redis reading layer's pure steps, fed with hashes in the aggregator's own layout (``hash_fields``)."""

from datetime import UTC, datetime

import pytest

from stream_ner.aggregate.redis_sink import hash_fields
from stream_ner.dashboard.spikes import SpikeRule
from stream_ner.dashboard.store import (
    _DETAIL_FIELDS,
    _POINT_FIELDS,
    Family,
    build_board,
    build_brand,
    plan_board,
    scores,
    series_starts,
)
from stream_ner.messages import BrandAggregate

MINUTE = Family("1m", 60, 60)
HOUR = Family("1h", 3600, 300)
T = 1_714_564_800  # 2024-05-01T12:00:00Z
RULE = SpikeRule(z=3.0, min_mentions=5, min_history=3)
NAMES = {"nike": "Nike", "adidas": "Adidas", "apple": "Apple"}


def record(
    brand,
    start,
    size,
    mentions,
    authors=1,
    s_sum=0.0,
    s_count=0,
    co_brands=(),
    co_entities=(),
    polarity=(0, 0, 0),
):
    return BrandAggregate(
        brand=brand,
        unknown=brand.startswith("~"),
        window="1m",
        window_start=datetime.fromtimestamp(start, UTC),
        window_end=datetime.fromtimestamp(start + size, UTC),
        mentions=mentions,
        posts=mentions,
        authors=authors,
        co_brands=[{"id": b, "count": c} for b, c in co_brands],
        co_entities=[{"id": e, "count": c} for e, c in co_entities],
        sample_post_ids=["p1"],
        sentiment_sum=s_sum,
        sentiment_count=s_count,
        negative=polarity[0],
        neutral=polarity[1],
        positive=polarity[2],
        final=False,
    ).model_dump(mode="json")


def as_redis(fields: dict, names: tuple[str, ...]) -> list[bytes | None]:
    """What HMGET returns for the hash the aggregator wrote: bytes per field."""
    return [str(fields[n]).encode() if n in fields else None for n in names]


def test_the_current_window_of_a_hopping_family_is_the_one_that_covers_the_last_hour():
    starts = [T + k * 300 for k in range(12)]  # events over the last hour: windows starting every 5 min
    plan = plan_board(starts, HOUR, history=10)
    assert plan is not None
    assert plan.current == T + 11 * 300 - 3600 + 300 == T  # newest start minus (size - step)
    assert plan.previous is None and plan.history == ()


def test_previous_and_history_are_non_overlapping_windows_that_had_data():
    starts = [T + 60 * k for k in range(0, 10) if k != 6]  # minute 6 had no data at all
    plan = plan_board(starts, MINUTE, history=5)
    assert plan is not None
    assert plan.current == T + 9 * 60
    assert plan.previous == T + 8 * 60
    # the 5 windows before the current one, minus minute 6; minute 3 is beyond them
    assert plan.history == (T + 8 * 60, T + 7 * 60, T + 5 * 60, T + 4 * 60)
    assert plan_board([], MINUTE, 5) is None


def test_board_shares_changes_sentiment_and_a_spike_below_the_top_rows():
    current = {"nike": 30, "adidas": 10, "apple": 8, "~acme": 12}
    previous = {"nike": 20, "adidas": 10, "~acme": 12}
    history = [
        previous,
        {"nike": 25, "apple": 1, "~acme": 11},
        {"nike": 22, "~acme": 13},
        {"apple": 1, "~acme": 12},
    ]
    hashes = {
        "nike": hash_fields(record("nike", T, 60, 30, authors=21, s_sum=3.0, s_count=4, polarity=(0, 1, 3))),
        "apple": hash_fields(record("apple", T, 60, 8, authors=8)),
        "~acme": hash_fields(record("~acme", T, 60, 12, authors=2)),
    }
    details = {b: as_redis(f, _DETAIL_FIELDS) for b, f in hashes.items()}
    plan = plan_board([T - 240, T - 180, T - 120, T - 60, T], MINUTE, history=4)
    assert plan is not None and plan.previous == T - 60
    board = build_board(MINUTE, plan, current, previous, history, details, NAMES, rows=3, rule=RULE)

    assert [r.brand for r in board.rows] == ["nike", "~acme", "adidas", "apple"]  # top 3, the spiking apple
    assert board.spikes == ["apple"]
    assert board.total_mentions == 60 and board.brands == 4
    nike, acme, adidas, apple = board.rows
    assert nike.name == "Nike" and nike.share == 0.5 and nike.previous == 20 and nike.change == 0.5
    assert nike.authors == 21 and nike.sentiment == 0.75 and nike.sentiment_posts == 4
    assert acme.name == "acme" and acme.unknown and acme.previous == 12 and acme.change == 0.0
    assert nike.polarity == (0, 1, 3)  # mentions negative, neutral, positive toward the brand
    assert acme.sentiment is None and acme.sentiment_posts == 0  # no sentiment: None, not 0
    assert acme.polarity == (0, 0, 0) and adidas.polarity == (0, 0, 0)
    assert adidas.authors == 0 and adidas.posts == 0  # no hash read (yet): zeros, not an error
    assert apple.spike is not None and apple.spike.mean == pytest.approx(0.5)
    assert board.sentiment_posts == 4


def test_a_board_without_sentiment_says_so_and_without_a_previous_window_has_no_change():
    plan = plan_board([T], MINUTE, history=4)
    assert plan is not None
    details = {"nike": as_redis(hash_fields(record("nike", T, 60, 3)), _DETAIL_FIELDS)}
    board = build_board(MINUTE, plan, {"nike": 3}, None, [], details, NAMES, rows=10, rule=RULE)
    [row] = board.rows
    assert board.sentiment_posts == 0 and row.sentiment is None
    assert row.previous is None and row.change is None and row.spike is None
    assert board.start == T and board.end == T + 60
    # a previous window with data, but none for this brand: 0 before, and no percentage of 0
    [row] = build_board(MINUTE, plan, {"nike": 3}, {}, [{}], details, NAMES, rows=10, rule=RULE).rows
    assert row.previous == 0 and row.change is None


def test_zrange_replies_become_brand_counts():
    assert scores([(b"nike", 3.0), ("~acme", 1.0)]) == {"nike": 3, "~acme": 1}


def test_a_brand_page_series_spans_an_hour_of_minutes_or_a_day_of_hours():
    assert len(series_starts(MINUTE, T)) == 60 and series_starts(MINUTE, T)[-1] == T
    hours = series_starts(HOUR, T)
    assert len(hours) == 24 and hours[0] == T - 23 * 3600


def test_brand_page_points_gaps_and_co_mentions_from_the_record():
    starts = series_starts(MINUTE, T)[-4:]
    fields = {
        starts[0]: hash_fields(record("nike", starts[0], 60, 4, s_sum=-1.0, s_count=2)),
        starts[3]: hash_fields(
            record("nike", T, 60, 7, co_brands=[("adidas", 3)], co_entities=[("LOC:london", 2)])
        ),
    }
    replies = [as_redis(fields.get(s, {}), _POINT_FIELDS) for s in starts]
    known = {starts[0], starts[2], starts[3]}  # starts[1]: the family had no data then
    page = build_brand(MINUTE, "nike", T, starts, known, replies, fields[T]["record"], NAMES)
    assert [(p.start, p.mentions, p.sentiment) for p in page.points] == [
        (starts[0], 4, -0.5),
        (starts[2], 0, None),  # data in the family, none for the brand: zero
        (T, 7, None),
    ]
    assert page.name == "Nike" and page.start == T and page.end == T + 60
    assert [(c.id, c.name, c.count) for c in page.co_brands] == [("adidas", "Adidas", 3)]
    assert [(c.label, c.name, c.count) for c in page.co_entities] == [("LOC", "london", 2)]
    assert page.sample_post_ids == ["p1"]


def test_every_spiking_row_becomes_one_alert_keyed_by_brand_window_and_start():
    from stream_ner.dashboard.alerts import alerts_of

    plan = plan_board([T - 180, T - 120, T - 60, T], MINUTE, history=3)
    assert plan is not None
    history = [{"nike": 2}, {"nike": 1}, {"nike": 2}]
    board = build_board(MINUTE, plan, {"nike": 40, "adidas": 1}, history[0], history, {}, NAMES, 10, RULE)
    [alert] = alerts_of(board, RULE.z, RULE.min_mentions, now=datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC))
    assert alert.key() == "nike|1m|2024-05-01T12:00:00Z"
    assert (alert.mentions, alert.history, alert.threshold_z, alert.min_mentions) == (40, 3, 3.0, 5)
    assert alert.window_end == datetime(2024, 5, 1, 12, 1, tzinfo=UTC)
