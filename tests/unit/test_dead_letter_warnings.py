"""A flood of dead letters is counted and logged a few times, not once per message."""

from __future__ import annotations

import pytest

from hanzo.ml.schemas.dead_letters import DeadLetter, DeadLetterWarnings


def _letter(offset: int, reason: str = "schema") -> DeadLetter:
    return DeadLetter(reason, f"order: field 'total' at {offset}", "orders", 1, offset, None, b"{}")


def test_a_flood_is_one_warning_per_interval_with_the_counts(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    warnings = DeadLetterWarnings(interval_s=10.0, clock=lambda: now[0])
    with caplog.at_level("WARNING", logger="hanzo.ml.schemas.dead_letters"):
        for batch in range(100):  # 100 batches of 50 within 10 s
            now[0] += 0.05
            reason = "malformed_json" if batch % 4 == 0 else "schema"
            warnings.note([_letter(batch * 50 + i, reason) for i in range(50)])
        now[0] += 10.0
        warnings.note([_letter(9999)])
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "50 dead letters (malformed_json 50); the latest orders/1@49: order: field 'total' at 49",
        "4951 dead letters (schema 3751, malformed_json 1200); the latest orders/1@9999: "
        "order: field 'total' at 9999",
    ]
    assert warnings.pending == 0
    assert not warnings.note([])
