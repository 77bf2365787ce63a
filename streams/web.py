"""HTTP views of the serving engine, added to a Faust app's web server.

=========================  ========================================================================
route                      answer
=========================  ========================================================================
``GET /scores/{m}/{s}``    the score record the worker wrote for subject ``s`` by model ``m``; 404
``POST /predict/{m}``      body: a JSON object of features (``{"customer_id": "c1", "order_total": 120}``);
                           200 with the prediction, 400 bad JSON / not an object / non-finite number /
                           missing entity id, 404 unknown model, 503 Redis unreachable
``GET /models``            the served models (name, version, alias, entity, features)
``GET /health``            only when ``health`` is given (``streams.app`` defines its own)
=========================  ========================================================================

Errors are JSON ``{"error": "<kind>", "detail": "<what happened and what to do>"}``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import Any

import faust
from faust.web import Request, Response, View

from hanzo.ml.config.errors import HanzoError, ServiceUnavailableError, ValidationError
from hanzo.ml.learners.serving import ServingEngine
from hanzo.ml.learners.serving_models import UnknownModelError
from hanzo.ml.schemas import wire_json

logger = logging.getLogger(__name__)

#: Largest request body accepted by ``POST /predict`` (bytes).
MAX_BODY_BYTES = 64 * 1024
#: The content type of every answer.
JSON_TYPE = "application/json; charset=utf-8"


def _refuse_constant(name: str) -> float:
    msg = f"{name} is not a finite number; send finite numbers only"
    raise ValidationError(msg)


def parse_features(body: bytes) -> dict[str, Any]:
    """Parse a ``POST /predict`` body: a JSON object whose numbers are all finite.

    Examples
    --------
    >>> parse_features(b'{"customer_id": "c1", "order_total": 120.5}')
    {'customer_id': 'c1', 'order_total': 120.5}
    >>> parse_features(b'[1, 2]')
    Traceback (most recent call last):
    ...
    hanzo.ml.config.errors.ValidationError: the body must be a JSON object of features, got a list
    >>> parse_features(b'{"order_total": NaN}')
    Traceback (most recent call last):
    ...
    hanzo.ml.config.errors.ValidationError: NaN is not a finite number; send finite numbers only
    """
    if len(body) > MAX_BODY_BYTES:
        msg = f"the body has {len(body)} bytes, more than {MAX_BODY_BYTES}; send only the features"
        raise ValidationError(msg)
    try:
        value = json.loads(body, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"the body is not valid JSON ({exc}); send a JSON object of features"
        raise ValidationError(msg) from exc
    if not isinstance(value, dict):
        msg = f"the body must be a JSON object of features, got a {type(value).__name__}"
        raise ValidationError(msg)
    for key, v in value.items():
        if isinstance(v, float) and not math.isfinite(v):  # 1e999 parses to inf
            msg = f"feature {key!r} is not a finite number; send finite numbers only"
            raise ValidationError(msg)
    return value


def json_response(view: View, body: Any, status: int = 200) -> Response:
    """A JSON answer (orjson, :func:`schemas.wire_json.dumps`), ``charset=utf-8``.

    (Faust's ``View.json`` builds a new encoder class instance for every answer; this is the hot path.)
    """
    data = wire_json.dumps(body)
    return view.bytes(data, status=status, headers={"Content-Type": JSON_TYPE})  # type: ignore[no-any-return]


def error_body(kind: str, detail: str) -> dict[str, str]:
    """The JSON of every error answer."""
    return {"error": kind, "detail": detail}


def status_of(exc: BaseException) -> tuple[int, str]:
    """HTTP status and error kind of an exception raised while answering.

    Examples
    --------
    >>> status_of(UnknownModelError("unknown model 'x'"))
    (404, 'unknown_model')
    """
    if isinstance(exc, UnknownModelError):
        return 404, "unknown_model"
    if isinstance(exc, ValidationError):
        return 400, "bad_request"
    if isinstance(exc, ServiceUnavailableError):
        return 503, "service_unavailable"
    if isinstance(exc, HanzoError):
        return 500, "error"
    return 500, "internal_error"


def register_views(
    app: faust.App,
    engine: ServingEngine,
    models_info: Callable[[], dict[str, Any]] | None = None,
    health: Callable[[], dict[str, Any]] | None = None,
) -> None:
    """Add the serving routes to ``app``'s web server (call before the worker starts).

    ``models_info`` adds keys to the ``GET /models`` answer (e.g. the learners' example counts);
    ``health`` adds ``GET /health`` answering its dict (200, or 503 when it holds ``"status": "down"``).
    """

    def failure(view: View, exc: BaseException, what: str) -> Response:
        status, kind = status_of(exc)
        if status >= 500 and kind != "service_unavailable":
            logger.exception("%s failed", what)
            detail = f"{type(exc).__name__}: {exc}; see the worker's log"
        else:
            detail = str(exc)
        return json_response(view, error_body(kind, detail), status=status)

    @app.page("/scores/{model}/{subject}")
    class Scores(View):
        """The latest score record of one subject."""

        async def get(self, request: Request, model: str, subject: str) -> Response:
            try:
                record = engine.lookup_score(model, subject)
            except Exception as exc:
                return failure(self, exc, f"GET /scores/{model}/{subject}")
            if record is None:
                detail = f"no score of {subject!r} by model {model!r} (never scored, or expired)"
                return json_response(self, error_body("not_found", detail), status=404)
            return json_response(self, record)

    @app.page("/predict/{model}")
    class Predict(View):
        """Score one entity now with request-time features."""

        async def post(self, request: Request, model: str) -> Response:
            try:
                features = parse_features(await request.read())
                prediction = await engine.apredict(model=model, features=features)
            except Exception as exc:
                return failure(self, exc, f"POST /predict/{model}")
            return json_response(self, prediction.to_dict())

    @app.page("/models")
    class Models(View):
        """The served models."""

        async def get(self, request: Request) -> Response:
            body: dict[str, Any] = {"models": engine.models()}
            if models_info is not None:
                body.update(models_info())
            return self.json(body)  # type: ignore[no-any-return]

    if health is not None:
        check = health

        @app.page("/health")
        class Health(View):
            """Liveness of the worker, as the caller's ``health`` reports it."""

            async def get(self, request: Request) -> Response:
                body = check()
                return self.json(  # type: ignore[no-any-return]
                    body, status=503 if body.get("status") == "down" else 200
                )
