import json

import pytest

from loadtest.generate import ensure_local, post_value
from loadtest.measure import LatencyRecorder, cdf, decode, encode, new_histogram, summarize
from stream_ner.messages import parse_post

MS = 1_000_000


def test_summary_of_a_known_distribution():
    histogram = new_histogram()
    for ms in range(1, 1001):  # 1 .. 1000 ms, uniformly
        histogram.record_value(ms * 1000)
    summary = summarize(histogram)
    assert summary["count"] == 1000
    assert summary["p50_ms"] == pytest.approx(500, rel=0.01)
    assert summary["p95_ms"] == pytest.approx(950, rel=0.01)
    assert summary["p99_ms"] == pytest.approx(990, rel=0.01)
    assert summary["p999_ms"] == pytest.approx(999, rel=0.01)
    assert summary["max_ms"] == pytest.approx(1000, rel=0.01)


def test_empty_summary_is_all_zero():
    assert summarize(new_histogram()) == {
        "count": 0.0,
        "mean_ms": 0.0,
        "max_ms": 0.0,
        "p50_ms": 0.0,
        "p95_ms": 0.0,
        "p99_ms": 0.0,
        "p999_ms": 0.0,
    }


def test_histogram_survives_its_text_encoding_and_gives_a_monotonic_cdf():
    histogram = new_histogram()
    for us in (120, 5_000, 5_000, 80_000, 2_000_000):
        histogram.record_value(us)
    again = decode(json.loads(json.dumps(encode(histogram))))
    assert summarize(again) == summarize(histogram)
    points = cdf(again)
    assert points[-1] == (100.0, pytest.approx(2000, rel=0.001))
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(points, points[1:], strict=False))


def test_recorder_files_latency_by_send_second_and_arrivals_by_arrival_second():
    origin = 1_000 * 1_000 * MS
    recorder = LatencyRecorder(origin)
    recorder.record(origin + 100 * MS, origin + 150 * MS)  # sent in s0, 50 ms
    recorder.record(origin + 900 * MS, origin + 1_300 * MS)  # sent in s0, arrives in s1, 400 ms
    recorder.record(origin + 1_500 * MS, origin + 1_510 * MS)  # s1, 10 ms
    recorder.record(origin + 1_600 * MS, origin + 1_599 * MS)  # clock rounding: clamped to 1 µs
    rows = {row["t"]: row for row in recorder.timeline()}
    assert rows[0]["timed"] == 2 and rows[0]["received"] == 1
    assert rows[0]["max_ms"] == 400.0
    assert rows[1]["timed"] == 2 and rows[1]["received"] == 3
    assert recorder.summary()["count"] == 4


def test_posts_carry_their_send_time_and_are_valid_posts():
    value = post_value("step-1-7", "Loving my new Nike shoes", "step-1", 7, 1_700_000_000_123_456_789)
    post = parse_post(value, max_text_chars=20_000)
    assert post.id == "step-1-7"
    assert post.metadata == {"loadtest": "step-1", "seq": 7, "sent_at_ns": 1_700_000_000_123_456_789}


@pytest.mark.parametrize("bootstrap", ["127.0.0.1:9092", "localhost:1", "127.0.0.1:1,[::1]:2"])
def test_local_brokers_are_accepted(bootstrap):
    ensure_local(bootstrap)


@pytest.mark.parametrize(
    "bootstrap", ["10.0.0.5:9092", "kafka.example.com:9092", "127.0.0.1:1,192.168.1.2:2"]
)
def test_remote_brokers_are_refused(bootstrap):
    with pytest.raises(ValueError, match="local broker"):
        ensure_local(bootstrap)


def test_latency_splits_at_the_moment_the_worker_built_the_event():
    origin = 1_000 * 1_000 * MS
    recorder = LatencyRecorder(origin)
    for i in range(100):
        sent = origin + i * MS
        recorder.record(sent, sent + 50 * MS, processed_ns=sent + 30 * MS)
    assert recorder.split() == {
        "to_event_p50_ms": 30.0,
        "to_event_p99_ms": 30.0,
        "after_event_p50_ms": 20.0,
        "after_event_p99_ms": 20.0,
    }
    assert LatencyRecorder(origin).split() == {}


def test_processed_at_timestamps_are_read_to_the_microsecond():
    from loadtest.measure import _epoch_ns

    assert _epoch_ns("2026-01-02T03:04:05.123456+00:00") == 1_767_323_045_123_456_000
    assert _epoch_ns("2026-01-02T05:04:05.123456+02:00") == 1_767_323_045_123_456_000
    assert _epoch_ns("2026-01-02T03:04:05") is None  # no zone: not comparable
    assert _epoch_ns(None) is None and _epoch_ns("yesterday") is None
