"""Window math, the Lua rendering and the CLI table."""

from __future__ import annotations

import struct

import pytest

from hanzo.ml.config.errors import ConfigError
from hanzo.ml.config.settings import Settings
from hanzo.ml.features import (
    Aggregate,
    FeatureStore,
    InMemoryOnlineStore,
    RedisOnlineStore,
    load_definitions,
)
from hanzo.ml.features.backend import EntityPlan
from hanzo.ml.features.lua import render
from hanzo.ml.features.redis_store import encode_input
from hanzo.ml.features.windows import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    expired_below,
    is_late,
    parse_duration,
    parse_window,
    window_range,
)
from hanzo.ml.streams.cli import run


def test_window_range_is_half_open_by_bucket() -> None:
    t = 10 * HOUR_MS + 59 * MINUTE_MS
    lo, hi = window_range(t, HOUR_MS, 3)
    assert (lo, hi) == (7, 10)  # buckets 8, 9, 10: 08:00 .. 10:59
    assert [i for i in range(20) if lo < i <= hi] == [8, 9, 10]


def test_lateness_and_retention() -> None:
    assert not is_late(5 * HOUR_MS, 6 * HOUR_MS, HOUR_MS)
    assert is_late(5 * HOUR_MS - 1, 6 * HOUR_MS, HOUR_MS)
    # every read as of t >= max - lateness needs buckets above expired_below
    m, lateness, b, n = 100 * HOUR_MS + 123, 2 * HOUR_MS, MINUTE_MS, 60
    dead = expired_below(m, lateness, b, n)
    for t in range(m - lateness, m + 1, 997):
        assert window_range(t, b, n)[0] >= dead


@pytest.mark.parametrize("text", ["", "0h", "1w", "h", "1.5h", "-1d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text)


def test_parse_window() -> None:
    assert parse_window("90d") == 90 * DAY_MS and parse_window("lifetime") is None


def test_rendered_script_holds_the_definitions() -> None:
    a = Aggregate(
        name="spend_24h", entity="customer", source="orders", field="total", aggregation="sum", window="24h"
    )
    plan = EntityPlan("customer", (a,), 3_600_000, 40 * DAY_MS, 2 * DAY_MS)
    update, read = render(plan, "update"), render(plan, "read")
    assert 'kind = "w", f = "spend_24h", b = 900000, nb = 96, m = 1, k = {"sum"}, out = {1}' in update.source
    assert "local LATENESS = 3600000" in update.source and update.source.endswith("return update()\n")
    assert read.source.endswith("return read()\n") and read.sha != update.sha
    assert "{{" not in update.source


def test_encode_input_round_trips_floats() -> None:
    x = 0.1 + 0.2
    assert struct.unpack("<d", encode_input(x)) == (x,)
    assert struct.unpack("<dd", encode_input((x, 2.0))) == (x, 2.0)


def test_redis_store_refuses_braces() -> None:
    with pytest.raises(ConfigError, match="key prefix"):
        RedisOnlineStore(client=None, key_prefix="a{b}")  # type: ignore[arg-type]


def test_store_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="entity_ttl_ms"):
        FeatureStore(backend=InMemoryOnlineStore(), entity_ttl_ms=DAY_MS)
    with pytest.raises(ConfigError, match="negative"):
        FeatureStore(backend=InMemoryOnlineStore(), allowed_lateness_ms=-1)


def test_list_features_covers_every_kind() -> None:
    store = FeatureStore(backend=InMemoryOnlineStore())
    info = {f.name: f for f in store.list_features()}
    assert len([f for f in info.values() if f.kind == "aggregate"]) == len(load_definitions())
    assert info["spend_24h"].precision == "15m" and info["order_total"].kind == "request"


def test_cli_lists_features(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert run(["features", "list"], Settings()) == 0
    out = capsys.readouterr().out
    assert "units_sold_24h" in out and "support_tickets_30d" in out and "15m" in out
