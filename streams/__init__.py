"""Streams: event schemas, the worker, the simulator, the embedded stack and the ``hanzo-ml`` CLI."""

from streams.dead_letters import DeadLetter
from streams.schemas import CustomerEvent, Label, Order, OrderItem, parse_event, to_json

__all__ = ["CustomerEvent", "DeadLetter", "Label", "Order", "OrderItem", "parse_event", "to_json"]
