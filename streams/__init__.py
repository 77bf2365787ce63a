"""Streams, the top layer: the worker, the simulator, the embedded stack, train's replay and the CLI.

Event schemas live in :mod:`hanzo.ml.schemas`; this package may import every other one, and none imports it.
"""
