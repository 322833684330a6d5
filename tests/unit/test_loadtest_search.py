import pytest

from loadtest.search import Limits, RateSearch, backlog_slope, judge


def run_search(capacity: float, start: float, **kwargs) -> RateSearch:
    search = RateSearch(start=start, **kwargs)
    while (rate := search.next_rate()) is not None:
        search.record(rate, rate <= capacity)
    return search


@pytest.mark.parametrize("start", [50.0, 300.0, 900.0])
def test_search_ends_within_resolution_below_the_capacity(start):
    search = run_search(capacity=400.0, start=start, resolution=0.04, max_steps=20)
    best, bad = search.best(), search.lowest_failure()
    assert best is not None and best <= 400.0
    assert bad is not None and bad > 400.0
    assert (bad - best) / bad <= 0.04
    assert len(search.history) <= 20


def test_search_is_bounded_by_max_steps():
    search = run_search(capacity=1e9, start=10.0, max_steps=5)
    assert len(search.history) == 5
    assert search.best() == pytest.approx(10.0 * 1.25**4)


def test_search_gives_up_below_the_floor():
    search = run_search(capacity=0.0, start=8.0, floor=1.0, max_steps=20)
    assert search.best() is None
    assert [rate for rate, _ in search.history] == [8.0, 4.0, 2.0, 1.0]


def test_a_noisy_failure_below_the_best_rate_is_ignored():
    search = RateSearch(start=100.0)
    search.record(100.0, False)
    search.record(50.0, True)
    search.record(75.0, True)
    search.record(60.0, False)  # noise: fails below a sustained rate
    assert search.best() == 75.0
    assert search.lowest_failure() == 100.0
    assert search.next_rate() == 87.5


def test_backlog_slope_fits_the_second_half():
    times = [i * 0.5 for i in range(40)]
    flat_then_growing = [0.0] * 20 + [10.0 * (t - 10.0) for t in times[20:]]
    assert backlog_slope(times, flat_then_growing) == pytest.approx(10.0)
    sawtooth = [float(i % 4) * 16 for i in range(40)]
    assert abs(backlog_slope(times, sawtooth)) < 2.0
    assert backlog_slope([0.0, 1.0], [0.0, 5.0]) == 0.0


def verdict(**overrides):
    args = dict(
        rate=100.0,
        offered_rate=100.0,
        sent=1000,
        received=1000,
        p99_ms=50.0,
        times_s=[float(t) for t in range(10)],
        backlog=[5.0] * 10,
        limits=Limits(p99_limit_ms=1000),
    )
    return judge(**(args | overrides))


def test_judge_accepts_a_healthy_step_and_names_the_first_failed_condition():
    assert verdict().sustained
    assert verdict(offered_rate=80.0).reason.startswith("generator offered only")
    assert verdict(received=990).reason == "10 posts without an event"
    growing = [float(20 * t) for t in range(10)]
    assert verdict(backlog=growing).reason.startswith("backlog grew 20.0")
    slow = verdict(p99_ms=1500.0)
    assert not slow.sustained and slow.reason == "p99 1500 ms over 1000 ms"
