import pytest

from loadtest.search import Limits, RateSearch, backlog_slope, judge


def run_search(capacity: float, start: float, transients: int = 0, **kwargs) -> RateSearch:
    """A search against a system that sustains ``capacity``; its first ``transients`` steps fail anyway."""
    search = RateSearch(start=start, **kwargs)
    while (rate := search.next_rate()) is not None:
        search.record(rate, rate <= capacity and len(search.history) >= transients)
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
    assert [rate for rate, _ in search.history] == [8.0, 8.0, 4.0, 4.0, 2.0, 2.0, 1.0, 1.0]
    without_retries = run_search(capacity=0.0, start=8.0, floor=1.0, max_steps=20, retries=0)
    assert [rate for rate, _ in without_retries.history] == [8.0, 4.0, 2.0, 1.0]


def test_a_failure_is_tried_again_before_it_bounds_the_search():
    search = run_search(capacity=400.0, start=300.0, retries=2, max_steps=30)
    trials = [rate for rate, _ in search.history]
    failed = {rate for rate, ok in search.history if not ok}
    assert failed and all(trials.count(rate) == 3 for rate in failed)
    assert search.lowest_failure() == min(failed)


def test_a_transient_failure_does_not_cap_the_answer():
    # the first step, well within the capacity, fails once (a rebalance, a broker flush)
    search = run_search(capacity=400.0, start=300.0, transients=1, max_steps=20)
    assert search.history[:2] == [(300.0, False), (300.0, True)]
    best, bad = search.best(), search.lowest_failure()
    assert best is not None and bad is not None
    assert best <= 400.0 < bad and (bad - best) / bad <= 0.04
    # without a retry the same transient bounds the search below the rate that failed
    capped = run_search(capacity=400.0, start=300.0, transients=1, max_steps=20, retries=0)
    assert (capped.best() or 0.0) < 300.0


def test_a_noisy_failure_below_the_best_rate_is_ignored():
    search = RateSearch(start=100.0)
    search.record(100.0, False)
    search.record(100.0, False)
    search.record(50.0, True)
    search.record(75.0, True)
    search.record(60.0, False)  # noise: fails below a sustained rate, and is not tried again
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
