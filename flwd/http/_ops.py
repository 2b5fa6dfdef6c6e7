"""Operations: ``/healthz``, ``/health/storage``, ``/metrics`` and ``/openapi.json``."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from ._openapi import openapi_document
from ._state import current_state


async def storage_health() -> Response:
    """The Core DB's usage and retention's state.

    Cancellation: nothing is left behind (here as in every route of this module).
    """
    response = jsonify(await current_state().engine.storage_health())
    response.headers["Cache-Control"] = "no-store"
    return response


async def healthz() -> Response:
    return Response("", status=204, headers={"Cache-Control": "no-store"})


async def metrics() -> Response:
    served = current_state().metrics
    assert served is not None, "the route exists only with metrics"
    return Response(served.render(), content_type=served.content_type)


async def openapi() -> Response:
    return jsonify(openapi_document())


def ops_blueprint(*, with_metrics: bool) -> Blueprint:
    """The operations routes; ``/metrics`` only ``with_metrics`` (else it is a 404)."""
    blueprint = Blueprint("ops", __name__)
    blueprint.add_url_rule("/health/storage", view_func=storage_health, methods=["GET"])
    blueprint.add_url_rule("/healthz", view_func=healthz, methods=["GET"])
    if with_metrics:
        blueprint.add_url_rule("/metrics", view_func=metrics, methods=["GET"])
    blueprint.add_url_rule("/openapi.json", view_func=openapi, methods=["GET"])
    return blueprint
