"""Drift detection and monitoring: ADWIN / KS / chi-square detectors, Prometheus metrics, the Monitor API.

Detectors speak River's protocol (``update(x)`` + ``drift_detected``), so any ``river.drift`` detector drops
in beside them. :class:`Metrics` declares every Prometheus metric of hanzo-ml on a registry the caller passes
in; :class:`Monitor` is what a worker updates for each scored and labelled example, and what
``hanzo-ml monitor MODEL`` reads back from Redis.
"""

from hanzo.ml.monitor.adwin import LossADWIN
from hanzo.ml.monitor.chi2 import Chi2Detector
from hanzo.ml.monitor.feature_drift import FeatureDrift, FeatureDriftMonitor, adjust_p_values
from hanzo.ml.monitor.ks import KSDetector
from hanzo.ml.monitor.metrics import Metrics, MetricsServer, serve_metrics
from hanzo.ml.monitor.status import Alarm, DetectorState, Monitor, MonitorStatus
from hanzo.ml.monitor.two_sample import TwoSampleDetector

__all__ = [
    "Alarm",
    "Chi2Detector",
    "DetectorState",
    "FeatureDrift",
    "FeatureDriftMonitor",
    "KSDetector",
    "LossADWIN",
    "Metrics",
    "MetricsServer",
    "Monitor",
    "MonitorStatus",
    "TwoSampleDetector",
    "adjust_p_values",
    "serve_metrics",
]
