"""The simulator's BG/NBD churn on generated data: heterogeneous rates, drop-out for good, complaints.

Every margin is computed from the data (standard errors of the statistic under the null), none is a
recorded output.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest

from hanzo.ml.schemas.events import CustomerEvent, Label, Order
from hanzo.ml.streams.simulation import BGNBD, Simulator, SimulatorConfig

Event = Order | CustomerEvent | Label
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def stream() -> tuple[Simulator, list[Event]]:
    config = SimulatorConfig(
        seed=3, orders=8000, customers=1500, orders_per_day=40, browse_events_per_order=0.0, churn=BGNBD()
    )
    sim = Simulator(config)
    return sim, list(sim.events())


def legit_orders(sim: Simulator, events: list[Event]) -> list[Order]:
    return [e for e in events if isinstance(e, Order) and not sim.is_fraud(e.order_id)]


def test_purchase_rates_are_heterogeneous(stream: tuple[Simulator, list[Event]]) -> None:
    sim, events = stream
    # the cohort of the start: same exposure, so under one common rate its counts would be Poisson
    cohort = [f"{sim.config.prefix}-c{i:07d}" for i in range(sim.config.customers)]
    per = Counter(o.customer_id for o in legit_orders(sim, events))
    counts = [per[c] for c in cohort]
    n = len(counts)
    mean = sum(counts) / n
    var = sum((x - mean) ** 2 for x in counts) / (n - 1)
    # Poisson: variance / mean = 1 with standard error sqrt(2 / (n - 1)); the gamma mixture is far above
    assert var / mean > 1 + 10 * math.sqrt(2 / (n - 1)), (mean, var)
    # and many more customers never order than a Poisson of the same mean allows
    zeros = sum(x == 0 for x in counts) / n
    poisson_zeros = math.exp(-mean)
    assert zeros > poisson_zeros + 10 * math.sqrt(poisson_zeros * (1 - poisson_zeros) / n), (zeros, mean)


def test_churned_customers_never_order_again(stream: tuple[Simulator, list[Event]]) -> None:
    sim, events = stream
    orders = legit_orders(sim, events)
    last: dict[str, int] = {}
    for o in orders:
        last[o.customer_id] = max(last.get(o.customer_id, 0), o.event_time)
    churned = {c for c in last if sim.churned_at(c) is not None}
    assert len(churned) > len(last) / 10
    # every churned customer's last legitimate order is the one they dropped out after
    assert all(last[c] == sim.churned_at(c) for c in churned)
    end = max(o.event_time for o in orders)
    silent = [end - last[c] for c in churned]
    assert sum(silent) / len(silent) > 30 * DAY_MS  # the stream went on without them


def test_tickets_and_refunds_raise_drop_out(stream: tuple[Simulator, list[Event]]) -> None:
    sim, events = stream
    complaints: dict[str, list[int]] = {}
    for e in events:
        if isinstance(e, CustomerEvent) and e.type in ("support_ticket", "refund"):
            complaints.setdefault(e.customer_id, []).append(e.event_time)
    # per order: did the customer drop out after it, and had they complained by then?
    groups: dict[bool, list[bool]] = {False: [], True: []}
    for o in legit_orders(sim, events):
        complained = any(t <= o.event_time for t in complaints.get(o.customer_id, ()))
        groups[complained].append(sim.churned_at(o.customer_id) == o.event_time)
    rates = {k: sum(v) / len(v) for k, v in groups.items()}
    se = math.sqrt(sum(r * (1 - r) / len(groups[k]) for k, r in rates.items()))
    assert len(groups[True]) > 50
    assert rates[True] - rates[False] > 3 * se, (rates, se)

    # the same at the customer level: those with complaints churn more often than those without
    buyers = {o.customer_id for o in legit_orders(sim, events)}
    by: dict[bool, list[bool]] = {False: [], True: []}
    for c in buyers:
        by[c in complaints].append(sim.churned_at(c) is not None)
    share = {k: sum(v) / len(v) for k, v in by.items()}
    se = math.sqrt(sum(s * (1 - s) / len(by[k]) for k, s in share.items()))
    assert share[True] - share[False] > 3 * se, (share, se)


def test_drop_out_chances_follow_the_beta() -> None:
    model = BGNBD(a=2.0, b=6.0, ticket_uplift=0.0, refund_uplift=0.0)
    sim = Simulator(SimulatorConfig(seed=4, orders=100, customers=4000, churn=model))
    list(sim.events())
    p = [sim.dropout(f"s4-c{i:07d}") or 0.0 for i in range(4000)]
    mean = sum(p) / len(p)
    sd = math.sqrt(model.a * model.b / ((model.a + model.b) ** 2 * (model.a + model.b + 1)))
    assert abs(mean - model.mean_dropout) < 4 * sd / math.sqrt(len(p))


def test_simulate_churn_flag_turns_the_model_on(tmp_path) -> None:
    from hanzo.ml.schemas.jsonl import read_jsonl
    from hanzo.ml.streams.cli import run

    def quiet_share(churn: bool) -> float:
        """The share of customers who order in the first half of the stream and never in the second."""
        out = tmp_path / f"churn-{churn}.jsonl"
        argv = ["simulate", "--orders", "3000", "--customers", "300", "--orders-per-day", "100"]
        argv += ["--out", str(out)]
        assert run([*argv, "--churn"] if churn else argv) == 0
        orders = [e for e in read_jsonl(out) if isinstance(e, Order)]
        middle = (orders[0].event_time + orders[-1].event_time) // 2
        early = {o.customer_id for o in orders if o.event_time < middle}
        late = {o.customer_id for o in orders if o.event_time >= middle}
        return len(early - late) / len(early)

    without, with_churn = quiet_share(False), quiet_share(True)
    assert with_churn > without + 0.1, (without, with_churn)
