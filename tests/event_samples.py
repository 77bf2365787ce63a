"""Minimal valid events as JSON-ready dicts, shared by the schema tests (each builds its cases from them)."""

from __future__ import annotations

from typing import Any

ORDER: dict[str, Any] = {
    "kind": "order",
    "order_id": "o1",
    "customer_id": "c1",
    "event_time": 1_700_000_000_000,
    "items": [{"product_id": "p1", "category": "books", "quantity": 2, "unit_price": 10.0}],
    "total": 20.0,
    "currency": "EUR",
    "payment_method": "card",
    "billing_country": "DE",
    "shipping_country": "FR",
    "channel": "web",
}
EVENT: dict[str, Any] = {
    "kind": "customer_event",
    "event_id": "e1",
    "customer_id": "c1",
    "event_time": 1_700_000_000_000,
    "type": "click",
}
LABEL: dict[str, Any] = {
    "kind": "label",
    "label_id": "l1",
    "target": "fraud",
    "subject_id": "o1",
    "value": 1,
    "event_time": 1_700_000_000_000,
}
