"""The commerce simulator: determinism, ordering, labels, fraud share, learnability, history files."""

from __future__ import annotations

import math
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Iterator
from pathlib import Path

import pydantic
import pytest
from river import linear_model, preprocessing

from hanzo.ml.config.errors import ConfigError, ValidationError
from hanzo.ml.schemas.events import CustomerEvent, Label, Order, parse_event, to_json
from hanzo.ml.streams import simulation
from hanzo.ml.streams.cli import main
from hanzo.ml.streams.simulation import DriftSpec, Simulator, SimulatorConfig, read_jsonl, write_jsonl

HOUR_MS = 3_600_000
DAY_MS = 86_400_000


def _events(**kw: object) -> tuple[Simulator, list[Order | CustomerEvent | Label]]:
    sim = Simulator(SimulatorConfig(**kw))  # type: ignore[arg-type]
    return sim, list(sim.events())


@pytest.fixture(scope="module")
def run() -> tuple[Simulator, list[Order | CustomerEvent | Label]]:
    return _events(seed=11, orders=6000)


def test_public_names() -> None:
    assert set(simulation.__all__) == {
        "BGNBD", "DriftSpec", "ProduceStats", "SimulationCounters", "Simulator", "SimulatorConfig",
        "event_key", "produce", "read_jsonl", "write_jsonl",
    }  # fmt: skip


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    paths = [tmp_path / f"{i}.jsonl" for i in range(3)]
    for path, seed in zip(paths, (5, 5, 6), strict=True):
        write_jsonl(Simulator(SimulatorConfig(seed=seed, orders=1500)).events(), path)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def test_events_restarts_from_the_seed() -> None:
    sim = Simulator(SimulatorConfig(seed=2, orders=300))
    first = [to_json(e) for e in sim.events()]
    assert first == [to_json(e) for e in sim.events()]


def test_event_time_never_decreases_and_every_event_is_valid(run: tuple[Simulator, list]) -> None:  # type: ignore[type-arg]
    _, events = run
    times = [e.event_time for e in events]
    assert all(a <= b for a, b in zip(times, times[1:], strict=False))
    for e in events[:3000]:
        assert parse_event(to_json(e)) == e  # the generator builds only schema-valid events


def test_every_order_gets_one_fraud_label_after_it(run: tuple[Simulator, list]) -> None:  # type: ignore[type-arg]
    sim, events = run
    cfg = sim.config
    orders = {e.order_id: e for e in events if isinstance(e, Order)}
    labels = [e for e in events if isinstance(e, Label)]
    assert len(orders) == cfg.orders
    assert Counter(lab.subject_id for lab in labels) == Counter(list(orders))
    assert len({lab.label_id for lab in labels}) == len(labels)
    chargebacks = {e.order_id: e for e in events if isinstance(e, CustomerEvent) and e.type == "chargeback"}
    for lab in labels:
        order = orders[lab.subject_id]
        assert lab.target == "fraud"
        fraud = sim.is_fraud(order.order_id)
        assert lab.value == (1.0 if fraud else 0.0)
        low, high = cfg.chargeback_delay_days if fraud else cfg.settle_delay_days
        assert order.event_time + low * DAY_MS <= lab.event_time <= order.event_time + high * DAY_MS
        if fraud:
            assert chargebacks[order.order_id].event_time == lab.event_time
    assert set(chargebacks) == {o for o in orders if sim.is_fraud(o)}
    assert sim.counters.orders == cfg.orders and sim.counters.labels == cfg.orders
    assert sim.counters.fraud_orders == len(chargebacks)


@pytest.mark.parametrize("rate", [0.02, 0.08])
def test_fraud_share_is_near_the_target(rate: float) -> None:
    sim, _ = _events(seed=4, orders=12_000, fraud_rate=rate)
    share = sim.counters.fraud_share
    assert abs(share - rate) < 0.3 * rate, share
    assert sim.counters.fake_account_orders > 0 and sim.counters.account_takeover_orders > 0


def test_no_fraud_when_rate_is_zero() -> None:
    sim, events = _events(seed=4, orders=2000, fraud_rate=0.0)
    assert sim.counters.fraud_orders == 0
    assert not any(isinstance(e, CustomerEvent) and e.type == "chargeback" for e in events)


def test_browsing_precedes_orders_and_can_be_off(run: tuple[Simulator, list]) -> None:  # type: ignore[type-arg]
    _, events = run
    orders = {e.order_id: e for e in events if isinstance(e, Order)}
    browse = [e for e in events if isinstance(e, CustomerEvent) and e.event_id.rsplit("-", 1)[-1][0] == "b"]
    assert 1.5 < len(browse) / len(orders) < 2.5
    for e in browse:
        order = orders[e.event_id.rsplit("-", 1)[0]]
        assert e.customer_id == order.customer_id
        assert order.event_time - HOUR_MS <= e.event_time < order.event_time
        if e.type == "search":
            assert e.query
        if e.type == "add_to_cart":
            assert e.product_id in {i.product_id for i in order.items}
    types = Counter(e.type for e in events if isinstance(e, CustomerEvent))
    assert {
        "page_view",
        "search",
        "add_to_cart",
        "checkout_started",
        "support_ticket",
        "refund",
        "signup",
    } <= set(types)
    _, quiet = _events(seed=11, orders=500, browse_events_per_order=0)
    assert not any(
        isinstance(e, CustomerEvent) and e.type in ("page_view", "checkout_started") for e in quiet
    )


def test_fake_accounts_are_fresh_and_sign_up_before_ordering(run: tuple[Simulator, list]) -> None:  # type: ignore[type-arg]
    sim, events = run
    signups = {
        e.customer_id: e.event_time for e in events if isinstance(e, CustomerEvent) and e.type == "signup"
    }
    fake = [e for e in events if isinstance(e, Order) and sim.fraud_kind(e.order_id) == "fake_account"]
    assert fake
    for order in fake:
        assert order.account_created_time is not None
        assert 0 < order.event_time - order.account_created_time < 8 * HOUR_MS
        assert signups[order.customer_id] == order.account_created_time
    takeovers = [
        e for e in events if isinstance(e, Order) and sim.fraud_kind(e.order_id) == "account_takeover"
    ]
    assert takeovers and all(o.event_time - (o.account_created_time or 0) >= 30 * DAY_MS for o in takeovers)


def _features(events: Iterable[Order | CustomerEvent | Label]) -> Iterator[tuple[Order, dict[str, float]]]:
    """Per-customer features known at order time, computed from the stream itself."""
    recent: dict[str, deque[int]] = defaultdict(deque)
    count: Counter[str] = Counter()
    spent: Counter[str] = Counter()
    shipped: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if not isinstance(e, Order):
            continue
        cid, q = e.customer_id, recent[e.customer_id]
        while q and q[0] < e.event_time - HOUR_MS:
            q.popleft()
        n = count[cid]
        yield (
            e,
            {
                "orders_last_hour": float(len(q)),
                "log_account_age_h": math.log1p((e.event_time - (e.account_created_time or 0)) / HOUR_MS),
                "billing_ne_shipping": float(e.billing_country != e.shipping_country),
                "new_shipping_country": float(n > 0 and e.shipping_country not in shipped[cid]),
                "risky_payment": float(e.payment_method in ("gift_card", "crypto")),
                "log_total": math.log1p(e.total),
                "total_vs_mean": math.log((e.total + 1) / (spent[cid] / n + 1)) if n else 0.0,
            },
        )
        q.append(e.event_time)
        count[cid] += 1
        spent[cid] += e.total
        shipped[cid].add(e.shipping_country)


def _auc(y: list[bool], p: list[float]) -> float:
    pairs = sorted(zip(p, y, strict=True))
    ranks: list[float] = [0.0] * len(pairs)
    i = 0
    while i < len(pairs):  # average ranks over ties
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        ranks[i:j] = [(i + j + 1) / 2] * (j - i)
        i = j
    pos = sum(y)
    rank_pos = sum(r for r, (_, label) in zip(ranks, pairs, strict=True) if label)
    return (rank_pos - pos * (pos + 1) / 2) / (pos * (len(y) - pos))


def test_fraud_is_learnable_but_not_trivially() -> None:
    """Predict at order time, learn when the delayed label arrives: progressive validation."""
    sim = Simulator(SimulatorConfig(seed=21, orders=6000, orders_per_day=300))
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    waiting: dict[str, dict[str, float]] = {}
    ys: list[bool] = []
    ps: list[float] = []
    events = list(sim.events())
    features = dict((o.order_id, x) for o, x in _features(events))
    for e in events:
        if isinstance(e, Order):
            x = features[e.order_id]
            ps.append(model.predict_proba_one(x).get(True, 0.0))
            ys.append(sim.is_fraud(e.order_id))
            waiting[e.order_id] = x
        elif isinstance(e, Label):
            model.learn_one(waiting.pop(e.subject_id), e.value == 1.0)
    # The first days have no labels back yet: judge the second half, after warm-up.
    auc = _auc(ys[len(ys) // 2 :], ps[len(ps) // 2 :])
    assert 0.75 < auc < 0.99, auc


def test_jsonl_round_trip(tmp_path: Path) -> None:
    _, events = _events(seed=3, orders=400)
    path = tmp_path / "history.jsonl"
    assert write_jsonl(events, path) == len(events)
    assert list(read_jsonl(path)) == events
    kinds = {line.split(b'"kind":"')[1].split(b'"')[0] for line in path.read_bytes().splitlines()}
    assert kinds == {b"order", b"customer_event", b"label"}


def test_read_jsonl_names_the_bad_line(tmp_path: Path) -> None:
    _, events = _events(seed=3, orders=5)
    path = tmp_path / "bad.jsonl"
    write_jsonl(events[:2], path)
    with path.open("ab") as f:
        f.write(b"\n" + b'{"kind":"label","label_id":"x"}\n')
    with pytest.raises(ValidationError, match=r"line 4: label: field 'target' is missing"):
        list(read_jsonl(path))


def test_drift_hooks_change_the_stream() -> None:
    base_sim, base = _events(seed=8, orders=3000)
    sim, shifted = _events(seed=8, orders=3000, drift=[DriftSpec(at_order=1500, kind="feature_shift")])
    assert sim.counters.drift_applied == [(1500, "feature_shift")]

    def mean_price(events: list, lo: int, hi: int) -> float:  # type: ignore[type-arg]
        items = [
            i.unit_price
            for e in events
            if isinstance(e, Order)
            for i in e.items
            if lo <= int(e.order_id[-8:]) < hi
        ]
        return sum(items) / len(items)

    assert mean_price(shifted, 0, 1500) == mean_price(base, 0, 1500)
    assert mean_price(shifted, 1500, 3000) > 1.3 * mean_price(base, 1500, 3000)
    sim, changed = _events(seed=8, orders=3000, drift=[DriftSpec(at_order=0, kind="concept_change")])
    fraud = [e for e in changed if isinstance(e, Order) and sim.is_fraud(e.order_id)]
    assert fraud and all(o.payment_method == "card" and o.channel == "marketplace" for o in fraud)
    assert base_sim.counters.drift_applied == []


def test_churned_customers_stop_ordering() -> None:
    sim, events = _events(seed=9, orders=3000, churn=simulation.BGNBD())
    orders = [e for e in events if isinstance(e, Order) and not sim.is_fraud(e.order_id)]
    churned = [o for o in orders if sim.churned_at(o.customer_id) is not None]
    assert churned
    assert all(o.event_time <= (sim.churned_at(o.customer_id) or 0) for o in churned)
    last = {o.customer_id: o.event_time for o in churned}  # orders are in time order
    assert all(sim.churned_at(cid) == t for cid, t in last.items())  # gone right after the last order
    quiet, _ = _events(seed=9, orders=10)
    assert quiet.churned_at("s9-c0000001") is None
    assert quiet.dropout("s9-c0000001") is None


def test_churn_off_keeps_the_stream() -> None:
    _, default = _events(seed=5, orders=500)
    _, off = _events(seed=5, orders=500, churn=None)
    _, on = _events(seed=5, orders=500, churn=simulation.BGNBD())
    assert [to_json(e) for e in off] == [to_json(e) for e in default]
    assert [to_json(e) for e in on] != [to_json(e) for e in default]


def test_bad_config_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="chargeback_delay_days"):
        SimulatorConfig(chargeback_delay_days=(5, 2))
    with pytest.raises(pydantic.ValidationError, match="unknown"):
        SimulatorConfig(unknown=1)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="signups_per_day"):
        Simulator(SimulatorConfig(orders=10, orders_per_day=5, signups_per_day=100))


def test_cli_writes_a_history_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "h.jsonl"
    assert main(["simulate", "--orders", "300", "--seed", "4", "--out", str(path)]) == 0
    events = list(read_jsonl(path))
    assert sum(isinstance(e, Order) for e in events) == 300
    assert sum(isinstance(e, Label) for e in events) == 300
    assert "fraud orders" in capsys.readouterr().out
    assert main(["simulate", "--orders", "-3", "--out", str(path)]) == 1
