"""Drift detection on the simulator: KS and ADWIN detection delays, and false alarms on a stationary stream.

Run alone with ``.venv/bin/python -m bench.drift``; it updates section ``drift`` of ``bench/results.json``.

* ``ks_detection_delay_events``: the simulator injects a feature shift (prices x1.5, more orders shipped
  abroad) at a known order; :class:`monitor.FeatureDriftMonitor` watches the order features the fraud model
  uses (order total, account age, country mismatch, payment method). Delay = orders from the change to the
  first alarm (median over five seeds; the change is at order 10,000).
* ``adwin_detection_delay_events``: at order 6,000 (fraud rate 5 %) the simulator injects a concept change
  (fraudsters pay by card, ship home, buy gift cards via the marketplace); a River
  ``StandardScaler | LogisticRegression`` on those order features learns online (predict, then learn) and
  :class:`monitor.LossADWIN` watches its log loss. Labels are applied in order sequence (no label delay),
  so the delay counts labelled examples (median over five seeds).
* ``false_alarms_per_100k``: both detectors on a stationary stream of 100,000 events (River's ``SEA``
  generator, one concept, 10 % label noise): KS on its three features plus ADWIN on the loss of the same
  logistic regression learning it.

The simulator's world is not stationary even without injected drift (accounts age, fraud comes in
bursts), so the alarms it raises without injection are reported apart
(``simulator_no_injection_alarms_per_100k``): they are real changes of the stream, not false alarms.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from river import compose, linear_model, optim, preprocessing
from river.datasets import synth

from hanzo.ml.monitor import FeatureDriftMonitor, LossADWIN
from hanzo.ml.schemas.events import Order
from hanzo.ml.streams.simulation import DriftSpec, Simulator, SimulatorConfig

DAY_MS = 86_400_000

#: The order features the fraud pipeline uses that an order carries by itself.
ORDER_FEATURES: dict[str, Any] = {
    "order_total": "numeric",
    "account_age_days": "numeric",
    "country_mismatch": "categorical",
    "payment_method": "categorical",
}
SEEDS = (1, 2, 3, 4, 5)


def order_features(order: Order) -> dict[str, Any]:
    """The fraud model's order-level features of ``order``."""
    return {
        "order_total": order.total,
        "account_age_days": (order.event_time - (order.account_created_time or order.event_time)) / DAY_MS,
        "country_mismatch": order.billing_country != order.shipping_country,
        "payment_method": order.payment_method,
    }


def orders(config: SimulatorConfig) -> Iterator[tuple[Simulator, Order]]:
    """The orders of a simulated stream (with the simulator, for its ground truth)."""
    sim = Simulator(config)
    for event in sim.events():
        if isinstance(event, Order):
            yield sim, event


def fraud_model() -> Any:
    """``StandardScaler | LogisticRegression`` on the numbers, one-hot on the categories."""
    numbers = compose.Select("log_total", "account_age_days") | preprocessing.StandardScaler()
    categories = compose.Select("payment_method", "country_mismatch") | preprocessing.OneHotEncoder()
    return (numbers + categories) | linear_model.LogisticRegression(optimizer=optim.SGD(0.05))


def model_input(x: Mapping[str, Any]) -> dict[str, Any]:
    """Order features as the model takes them (log of the total, categories as strings)."""
    return {
        "log_total": math.log1p(x["order_total"]),
        "account_age_days": x["account_age_days"],
        "payment_method": x["payment_method"],
        "country_mismatch": str(x["country_mismatch"]),
    }


def log_loss(p_true: float, y: bool) -> float:
    """Binary log loss of one prediction (probabilities clipped to [1e-7, 1 - 1e-7])."""
    p = min(max(p_true, 1e-7), 1 - 1e-7)
    return -math.log(p if y else 1 - p)


@dataclass
class Run:
    """Alarms of one run: positions (0-based event index) of the alarms before and after the change."""

    change_at: int | None
    alarms: list[int] = field(default_factory=list)
    events: int = 0

    @property
    def delay(self) -> int | None:
        """Events from the change to the first alarm at or after it (None: not detected)."""
        if self.change_at is None:
            return None
        after = [a for a in self.alarms if a >= self.change_at]
        return after[0] - self.change_at if after else None

    @property
    def alarms_before_change(self) -> int:
        """Alarms before the change (false alarms); all of them on a stream without a change."""
        return sum(1 for a in self.alarms if self.change_at is None or a < self.change_at)


def ks_feature_shift(seed: int, change_at: int = 10_000, after: int = 6000, magnitude: float = 1.0) -> Run:
    """Feature shift injected at order ``change_at``; KS on the order features."""
    config = SimulatorConfig(
        seed=seed,
        orders=change_at + after,
        browse_events_per_order=0,
        drift=(DriftSpec(at_order=change_at, kind="feature_shift", magnitude=magnitude),),
    )
    detector = FeatureDriftMonitor(ORDER_FEATURES, seed=seed)
    run = Run(change_at)
    for i, (_, order) in enumerate(orders(config)):
        detector.update(order_features(order))
        if detector.drift_detected:
            run.alarms.append(i)
        run.events = i + 1
    return run


def adwin_concept_change(
    seed: int, change_at: int = 6000, after: int = 10_000, fraud_rate: float = 0.05
) -> Run:
    """Concept change injected at order ``change_at``; ADWIN on the log loss of a model learning online."""
    config = SimulatorConfig(
        seed=seed,
        orders=change_at + after,
        fraud_rate=fraud_rate,
        browse_events_per_order=0,
        drift=(DriftSpec(at_order=change_at, kind="concept_change"),),
    )
    model, detector, run = fraud_model(), LossADWIN(), Run(change_at)
    for i, (sim, order) in enumerate(orders(config)):
        x = model_input(order_features(order))
        y = sim.is_fraud(order.order_id)
        detector.update(log_loss(model.predict_proba_one(x).get(True, 0.0), y))
        if detector.drift_detected:
            run.alarms.append(i)
        model.learn_one(x, y)
        run.events = i + 1
    return run


def stationary_false_alarms(events: int = 100_000, seed: int = 42) -> tuple[Run, Run]:
    """KS on the features and ADWIN on the loss, on River's stationary ``SEA`` stream; (ks, adwin)."""
    features = FeatureDriftMonitor(dict.fromkeys(("x0", "x1", "x2"), "numeric"), seed=seed)
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    adwin = LossADWIN()
    ks_run, adwin_run = Run(None), Run(None)
    stream = synth.SEA(variant=0, noise=0.1, seed=seed)
    for i, (raw, y) in enumerate(stream.take(events)):
        x = {f"x{k}": v for k, v in raw.items()}
        features.update(x)
        if features.drift_detected:
            ks_run.alarms.append(i)
        adwin.update(log_loss(model.predict_proba_one(x).get(True, 0.0), y))
        if adwin.drift_detected:
            adwin_run.alarms.append(i)
        model.learn_one(x, y)
    ks_run.events = adwin_run.events = events
    return ks_run, adwin_run


def simulator_no_injection(
    orders_n: int = 100_000, seed: int = 1, fraud_rate: float = 0.05
) -> tuple[Run, Run]:
    """The same two detectors on the simulator without injected drift; (ks, adwin)."""
    config = SimulatorConfig(seed=seed, orders=orders_n, fraud_rate=fraud_rate, browse_events_per_order=0)
    features = FeatureDriftMonitor(ORDER_FEATURES, seed=seed)
    model, adwin = fraud_model(), LossADWIN()
    ks_run, adwin_run = Run(None), Run(None)
    for i, (sim, order) in enumerate(orders(config)):
        raw = order_features(order)
        features.update(raw)
        if features.drift_detected:
            ks_run.alarms.append(i)
        x, y = model_input(raw), sim.is_fraud(order.order_id)
        adwin.update(log_loss(model.predict_proba_one(x).get(True, 0.0), y))
        if adwin.drift_detected:
            adwin_run.alarms.append(i)
        model.learn_one(x, y)
    ks_run.events = adwin_run.events = orders_n
    return ks_run, adwin_run


def _median(values: list[int | None]) -> float | None:
    """Median delay, a missed detection counting as longer than any; None when most runs missed."""
    ranked = sorted(math.inf if v is None else float(v) for v in values)
    middle = statistics.median(ranked) if ranked else math.inf
    return None if math.isinf(middle) else float(middle)


def measure() -> dict[str, Any]:
    """Run every scenario; the ``drift`` section of the results file."""
    started = time.perf_counter()
    ks_runs = [ks_feature_shift(seed) for seed in SEEDS]
    adwin_runs = [adwin_concept_change(seed) for seed in SEEDS]
    ks_null, adwin_null = stationary_false_alarms()
    sim_ks, sim_adwin = simulator_no_injection()
    per_100k = 100_000 / ks_null.events
    return {
        "ks_detection_delay_events": _median([r.delay for r in ks_runs]),
        "adwin_detection_delay_events": _median([r.delay for r in adwin_runs]),
        "false_alarms_per_100k": (len(ks_null.alarms) + len(adwin_null.alarms)) * per_100k,
        "ks_delays_by_seed": [r.delay for r in ks_runs],
        "adwin_delays_by_seed": [r.delay for r in adwin_runs],
        "ks_alarms_before_change": sum(r.alarms_before_change for r in ks_runs),
        "adwin_alarms_before_change": sum(r.alarms_before_change for r in adwin_runs),
        "ks_false_alarms_per_100k": len(ks_null.alarms) * per_100k,
        "adwin_false_alarms_per_100k": len(adwin_null.alarms) * per_100k,
        "simulator_no_injection_alarms_per_100k": {
            "ks": len(sim_ks.alarms) * 100_000 / sim_ks.events,
            "adwin": len(sim_adwin.alarms) * 100_000 / sim_adwin.events,
        },
        "setup": {
            "ks_change_at_order": 10_000,
            "adwin_change_at_order": 6000,
            "missed": "a delay of null means not detected within 10,000 orders after the change",
            "seeds": list(SEEDS),
            "ks": "FeatureDriftMonitor defaults: reference 1000, window 1000, check every 500, alpha 0.01 "
            "Holm-corrected, min effect 0.1; features " + ", ".join(ORDER_FEATURES),
            "adwin": "LossADWIN(delta=0.002, direction=increase) on the log loss of "
            "StandardScaler|LogisticRegression, concept change at fraud_rate 0.05",
            "stationary": "river SEA(variant=0, noise=0.1), 100,000 events",
        },
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    """Measure, print a table and write the ``drift`` section."""
    from rich.console import Console
    from rich.table import Table

    from bench.results import write_section

    section = measure()
    table = Table(title="drift detection")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("detail")
    table.add_row(
        "KS detection delay (feature shift)",
        f"{section['ks_detection_delay_events']} orders",
        f"by seed {section['ks_delays_by_seed']}",
    )
    table.add_row(
        "ADWIN detection delay (concept change)",
        f"{section['adwin_detection_delay_events']} labels",
        f"by seed {section['adwin_delays_by_seed']}",
    )
    table.add_row(
        "false alarms / 100k stationary events",
        f"{section['false_alarms_per_100k']:g}",
        f"KS {section['ks_false_alarms_per_100k']:g}, ADWIN {section['adwin_false_alarms_per_100k']:g}",
    )
    sim = section["simulator_no_injection_alarms_per_100k"]
    table.add_row(
        "simulator alarms / 100k orders, no injection",
        f"{sim['ks'] + sim['adwin']:g}",
        f"KS {sim['ks']:g}, ADWIN {sim['adwin']:g} (accounts age, fraud bursts: real changes)",
    )
    Console().print(table)
    write_section("drift", section)


if __name__ == "__main__":
    main()
