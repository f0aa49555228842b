"""Arrival schedules: everything at once, Poisson, and gamma arrivals of other burstiness."""
import numpy as np
import pytest

from shadowkv_engine.bench.arrivals import send_times


def gaps(times):
    return np.diff([0.0, *times])


def test_infinite_rate_sends_everything_at_once():
    assert send_times(5, float("inf")) == [0.0] * 5


@pytest.mark.parametrize("burstiness, cv", [(1.0, 1.0), (0.25, 2.0), (4.0, 0.5)])
def test_mean_rate_and_burstiness(burstiness, cv):
    times = send_times(20000, rate=50.0, burstiness=burstiness, seed=3)
    assert times[-1] == pytest.approx(20000 / 50.0)  # rescaled: the last send at n / rate
    assert np.all(gaps(times) >= 0)
    g = gaps(times)
    assert g.mean() == pytest.approx(1 / 50.0, rel=1e-9)
    # gamma(shape k): coefficient of variation 1 / sqrt(k); Poisson (k = 1) has 1
    assert g.std() / g.mean() == pytest.approx(cv, rel=0.05)


def test_schedule_is_fixed_by_the_seed():
    assert send_times(50, 10.0, seed=1) == send_times(50, 10.0, seed=1)
    assert send_times(50, 10.0, seed=1) != send_times(50, 10.0, seed=2)


@pytest.mark.parametrize("num, rate, burstiness", [(-1, 1.0, 1.0), (5, 0.0, 1.0), (5, 1.0, 0.0)])
def test_bad_arguments(num, rate, burstiness):
    with pytest.raises(ValueError):
        send_times(num, rate, burstiness)
