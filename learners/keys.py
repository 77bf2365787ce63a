"""Redis keys of the scoring path (documented in the README's key table).

| key | value | TTL |
|---|---|---|
| ``score:{model}:{subject}`` | JSON: score, model, version, examples, scored_at_ms, event_time_ms | score |
| ``x:{model}:{subject}`` | JSON: x (the exact vector scored), score, event_time_ms | label horizon |

Also kept by the learners (see ``learners.vectors`` and ``learners.derived_labels``): ``xi:{model}`` (vectors
waiting for a label, by event time) and ``dl:{model}`` / ``dl:{model}:open`` (derived-label deadlines).

``subject`` is what the model scores: the order id for fraud, the customer id for churn.
"""

from __future__ import annotations


def score_key(model: str, subject: str, prefix: str = "") -> str:
    """Key of the latest score of ``subject`` by ``model``.

    Examples
    --------
    >>> score_key("fraud_detection", "o_42")
    'score:fraud_detection:o_42'
    """
    return f"{prefix}score:{model}:{subject}"


def vector_key(model: str, subject: str, prefix: str = "") -> str:
    """Key of the feature vector ``model`` scored for ``subject``, kept until its label arrives.

    Examples
    --------
    >>> vector_key("fraud_detection", "o_42", prefix="t1:")
    't1:x:fraud_detection:o_42'
    """
    return f"{prefix}x:{model}:{subject}"
