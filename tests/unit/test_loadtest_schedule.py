import numpy as np
import pytest

from loadtest import schedule


def test_constant_rate_sends_evenly_spaced_posts():
    offsets = schedule.send_offsets(schedule.constant(100, 2.0))
    assert len(offsets) == 200
    assert offsets[0] == 0.0
    np.testing.assert_allclose(np.diff(offsets), 0.01)
    assert offsets[-1] < 2.0


def test_ramp_sends_its_integral_with_growing_density():
    offsets = schedule.send_offsets(schedule.ramp(0, 200, 10.0))
    assert len(offsets) == 1000  # (0 + 200) / 2 * 10
    gaps = np.diff(offsets)
    assert gaps[-1] < gaps[10] / 5
    # half of the posts come in the last ~29% of a 0 -> r ramp: t = T * sqrt(1/2)
    assert offsets[500] == pytest.approx(10 * np.sqrt(0.5), rel=1e-3)


def test_phases_join_without_duplicate_or_missing_posts():
    offsets = schedule.send_offsets(schedule.constant(10, 1.0) + schedule.constant(20, 1.0))
    assert len(offsets) == 30
    assert np.all(np.diff(offsets) > 0)
    assert np.count_nonzero(offsets < 1.0) == 10


def test_bursts_alternate_base_and_peak_and_cover_the_duration():
    phases = schedule.bursts(10, 100, period_s=5, burst_s=1, duration_s=12)
    assert [(p.duration_s, p.start_rate) for p in phases] == [(4, 10), (1, 100), (4, 10), (1, 100), (2, 10)]
    assert schedule.total_duration(phases) == 12
    offsets = schedule.send_offsets(phases)
    assert len(offsets) == 40 + 100 + 40 + 100 + 20
    assert np.count_nonzero((offsets >= 4) & (offsets < 5)) == 100


def test_pause_phase_sends_nothing_and_max_count_bounds_a_run():
    offsets = schedule.send_offsets(
        schedule.constant(10, 1) + schedule.constant(0, 5) + schedule.constant(10, 1)
    )
    assert len(offsets) == 20
    assert not np.any((offsets >= 1) & (offsets < 6))
    assert len(schedule.send_offsets(schedule.constant(1000, 60), max_count=7)) == 7


def test_invalid_phases_are_refused():
    with pytest.raises(ValueError):
        schedule.Phase(0, 1, 1)
    with pytest.raises(ValueError):
        schedule.bursts(1, 2, period_s=1, burst_s=1, duration_s=5)
