"""The spike rule: far above the trailing mean, with a minimum count and enough history."""

import pytest

from stream_ner.dashboard.spikes import SpikeRule, detect

RULE = SpikeRule(z=3.0, min_mentions=5, min_history=3)


def test_a_jump_far_above_a_steady_history_is_a_spike():
    spike = detect(40, [10, 12, 9, 11, 10, 8], RULE)
    assert spike is not None
    assert spike.mean == pytest.approx(10.0)
    assert spike.history == 6
    assert spike.score > 3.0 and spike.mentions == 40


def test_one_to_three_mentions_is_no_spike_however_quiet_the_brand_was():
    assert detect(3, [1, 1, 1, 1, 1], RULE) is None
    assert detect(3, [0, 0, 0, 0, 0], RULE) is None
    # the same rise with the minimum met is one
    assert detect(5, [0, 0, 0, 0, 0], RULE) is not None


def test_a_flat_history_floors_the_deviation_at_one_mention():
    # sd 0: without the floor any rise would be infinitely many deviations
    assert detect(13, [10, 10, 10, 10], RULE) is None  # 3 above a flat 10 is not more than 3 x 1
    assert detect(14, [10, 10, 10, 10], RULE) is not None


def test_within_the_normal_spread_is_no_spike():
    history = [5, 30, 8, 25, 12, 28]  # noisy brand: sd ~ 10
    assert detect(45, history, RULE) is None
    assert detect(60, history, RULE) is not None


def test_too_little_history_is_no_spike():
    assert detect(100, [1, 1], RULE) is None
    assert detect(100, [1, 1, 1], RULE) is not None


def test_exactly_z_deviations_is_not_more_than_z():
    # mean 10, sd 2 -> threshold 16; "more than Z standard deviations"
    history = [8, 12, 8, 12]
    assert detect(16, history, RULE) is None
    assert detect(17, history, RULE) is not None
