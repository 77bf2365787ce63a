"""Drift detection end to end on the simulator: the bounds the README states, asserted on real streams.

The scenarios are the ones ``bench.drift`` measures (same functions, shorter runs): a feature shift flagged by
KS, a concept change flagged by ADWIN on a learning model's loss, and few false alarms on a stationary stream.
"""

from __future__ import annotations

import pytest

from bench.drift import adwin_concept_change, ks_feature_shift, stationary_false_alarms

#: KS must flag the feature shift within this many orders (window 1000, checks every 500).
KS_BOUND = 2000
#: ADWIN must flag the concept change within this many labelled examples.
ADWIN_BOUND = 2000
#: At most this many alarms (KS + ADWIN) on a stationary stream of 100,000 events.
FALSE_ALARM_BOUND = 2


def test_ks_flags_a_feature_shift():
    run = ks_feature_shift(seed=1, change_at=4000, after=KS_BOUND + 500)
    assert run.alarms_before_change == 0, run.alarms
    assert run.delay is not None and run.delay <= KS_BOUND, run.alarms


def test_adwin_flags_a_concept_change():
    run = adwin_concept_change(seed=1, change_at=6000, after=ADWIN_BOUND + 500)
    assert run.alarms_before_change == 0, run.alarms
    assert run.delay is not None and run.delay <= ADWIN_BOUND, run.alarms


def test_no_concept_change_no_adwin_alarm_in_the_same_span():
    # the same stream without the change: whatever ADWIN flags above is the change, not the stream
    run = adwin_concept_change(seed=1, change_at=6000 + ADWIN_BOUND + 500, after=1)
    assert [a for a in run.alarms if 6000 <= a < 6000 + ADWIN_BOUND + 500] == []


@pytest.mark.timeout(120)
def test_few_false_alarms_on_a_stationary_stream():
    ks, adwin = stationary_false_alarms(events=100_000, seed=42)
    assert ks.events == adwin.events == 100_000
    assert len(ks.alarms) + len(adwin.alarms) <= FALSE_ALARM_BOUND, (ks.alarms, adwin.alarms)
