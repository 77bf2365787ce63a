"""Learners: the model factory from a pipeline spec, metrics, the online learner and the score keys."""

from hanzo.ml.learners.factory import (
    MODEL_TABLE,
    ModelEntry,
    build_estimator,
    build_model,
    check_hyperparameters,
    describe_model,
    supports_many,
)
from hanzo.ml.learners.keys import score_key, vector_key
from hanzo.ml.learners.metrics import METRICS, MetricSet, lower_is_better
from hanzo.ml.learners.online import LearnOutcome, OnlineLearner
from hanzo.ml.learners.serving import ServingEngine
from hanzo.ml.learners.serving_cache import PredictionCache
from hanzo.ml.learners.serving_models import Prediction, ServedModel, UnknownModelError
from hanzo.ml.learners.spec import PipelineSpec

__all__ = [
    "METRICS",
    "MODEL_TABLE",
    "LearnOutcome",
    "MetricSet",
    "ModelEntry",
    "OnlineLearner",
    "PipelineSpec",
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
