"""hanzo-ml: streaming online learning for commerce.

Kafka events feed windowed features kept in Redis; River models learn from every label and score in real
time; snapshots go to a versioned registry; drift detectors and Prometheus alerts watch it all.

The packages, bottom to top (each imports only those below it):

- :mod:`hanzo.ml.config` -- settings (``HANZO_*``) and the error hierarchy.
- :mod:`hanzo.ml.schemas` -- the event schemas (orders, customer events, labels) and dead letters.
- :mod:`hanzo.ml.features`, :mod:`hanzo.ml.registry` -- the feature store; the model registry.
- :mod:`hanzo.ml.learners`, :mod:`hanzo.ml.monitor` -- pipeline specs, models and serving; drift and metrics.
- :mod:`hanzo.ml.streams` -- the worker, the simulator, the embedded stack and the ``hanzo-ml`` CLI.

Examples
--------
>>> from hanzo.ml import FeatureStore
>>> store = FeatureStore()  # in memory; FeatureStore(backend=RedisOnlineStore(...)) for Redis
>>> @store.feature
... def customer_lifetime_value(customer_id: str) -> float:
...     return {"cust_123": 420.0}.get(customer_id, 0.0)
>>> store.get_features(customer_id="cust_123", features=["customer_lifetime_value", "orders_24h"])
{'customer_lifetime_value': 420.0, 'orders_24h': 0.0}
"""

from hanzo.ml.config import ConfigError, HanzoError, Settings
from hanzo.ml.features import (
    Aggregate,
    FeatureStore,
    InMemoryOnlineStore,
    RedisOnlineStore,
)
from hanzo.ml.learners import PipelineSpec, ServingEngine
from hanzo.ml.monitor import Monitor
from hanzo.ml.registry import ModelVersion, Registry
from hanzo.ml.schemas import CustomerEvent, Label, Order, OrderItem

#: A declarative windowed feature (an entity, a source, an aggregation and a window).
Feature = Aggregate
#: A registered model version, as :meth:`Registry.register` returns it.
Model = ModelVersion

__all__ = [
    "Aggregate",
    "ConfigError",
    "CustomerEvent",
    "Feature",
    "FeatureStore",
    "HanzoError",
    "InMemoryOnlineStore",
    "Label",
    "Model",
    "ModelVersion",
    "Monitor",
    "Order",
    "OrderItem",
    "PipelineSpec",
    "RedisOnlineStore",
    "Registry",
    "ServingEngine",
    "Settings",
]
