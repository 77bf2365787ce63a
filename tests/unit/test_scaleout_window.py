"""The two-worker figure counts the time both workers had work, not the tail one worker drains alone."""

from __future__ import annotations

import math

from bench.scaleout import _both_busy


def test_window_ends_when_the_first_worker_has_drained_its_partitions() -> None:
    counts = [
        (0.0, [10.0, 10.0]),
        (1.0, [110.0, 90.0]),
        (2.0, [210.0, 150.0]),
        (3.0, [310.0, 150.0]),
        (4.0, [400.0, 150.0]),
    ]
    rate, seconds = _both_busy(counts)
    assert (rate, seconds) == ((210 + 150 - 20) / 2.0, 2.0)


def test_workers_that_finish_together_use_the_whole_window() -> None:
    rate, seconds = _both_busy([(0.0, [0.0, 5.0]), (2.0, [50.0, 45.0]), (4.0, [100.0, 100.0])])
    assert (rate, seconds) == (195 / 4.0, 4.0)


def test_too_few_samples_give_no_figure() -> None:
    rate, seconds = _both_busy([(0.0, [1.0, 1.0])])
    assert math.isnan(rate) and seconds == 0.0
