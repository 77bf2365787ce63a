"""Learners: the model factory from a pipeline spec, metrics, the online learner and the score keys."""

from learners.factory import (
    MODEL_TABLE,
    ModelEntry,
    build_estimator,
    build_model,
    check_hyperparameters,
    describe_model,
    supports_many,
)
from learners.keys import score_key, vector_key
from learners.metrics import METRICS, MetricSet, lower_is_better
from learners.online import LearnOutcome, OnlineLearner
from learners.serving import ServingEngine
from learners.serving_cache import PredictionCache
from learners.serving_models import Prediction, ServedModel, UnknownModelError

__all__ = [
    "METRICS",
    "MODEL_TABLE",
    "LearnOutcome",
    "MetricSet",
    "ModelEntry",
    "OnlineLearner",
    "Prediction",
    "PredictionCache",
    "ServedModel",
    "ServingEngine",
    "UnknownModelError",
    "build_estimator",
    "build_model",
    "check_hyperparameters",
    "describe_model",
    "lower_is_better",
    "score_key",
    "supports_many",
    "vector_key",
]
