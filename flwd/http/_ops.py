"""Operations: ``/healthz``, ``/health/storage``, ``/server``, ``/cluster``, ``/metrics`` and
``/openapi.json``."""

from __future__ import annotations

import time
from typing import Any

from quart import Blueprint, Response, jsonify

from flwd import __version__
from flwd.errors import StorageError
from flwd.events import format_ts

from ._openapi import openapi_document
from ._problems import HttpProblem
from ._state import current_state

_NO_STORE = {"Cache-Control": "no-store"}


def _degraded(detail: str, **stats: Any) -> HttpProblem:
    # The reference's problem (type …/storage-degraded), with the stats as extensions.
    return HttpProblem(503, "storage degraded", detail, code="storage-degraded",
                       headers=_NO_STORE, **stats)


async def storage_health() -> Response:
    """The Core DB's usage and retention's state: 200, or 503 ``storage-degraded`` when
    the database cannot grow (its file system is full) or cannot be read.

    Cancellation: nothing is left behind (here as in every route of this module).
    """
    try:
        health = await current_state().engine.storage_health()
    except StorageError as exc:
        raise _degraded(exc.one_line()) from exc
    if not health["ok"]:
        raise _degraded(
            f"the Core DB cannot grow: it takes {health['bytes_used']} bytes and can reach "
            f"{health['max_bytes']} (free space in the data dir's file system)", **health)
    response = jsonify(health)
    response.headers.update(_NO_STORE)
    return response


async def server_info() -> Response:
    """What this server is and how it runs (the web UI's status page): nothing secret,
    no path but the workspace's (which every run shows)."""
    state = current_state()
    engine, options = state.engine, state.options
    response = jsonify({
        "version": __version__,
        "profile": engine.profile,
        "runtime": engine.runtime.kind if engine.runtime is not None else "none",
        "ui": options.ui,
        "dev": options.dev,
        "workspace": engine.settings.workspace_key,
        "scripts_root": str(engine.settings.scripts_root),
        "started_at": format_ts(state.started_at),
        "uptime_seconds": round(time.monotonic() - state.started_monotonic, 3),
        # The UI counts a cancel's grace down (TERM → grace → KILL) with it.
        "grace_seconds": engine.settings.grace,
        "public_url": options.public_url,
    })
    response.headers.update(_NO_STORE)
    return response


async def cluster() -> Response:
    """The replicas of this server's cluster (servers sharing a PostgreSQL Core DB): their
    labels, heartbeat age and running counts; ``mode: single`` outside one."""
    try:
        view = await current_state().engine.cluster_view()
    except StorageError as exc:
        raise _degraded(exc.one_line()) from exc
    response = jsonify(view)
    response.headers.update(_NO_STORE)
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
    blueprint.add_url_rule("/server", view_func=server_info, methods=["GET"])
    blueprint.add_url_rule("/cluster", view_func=cluster, methods=["GET"])
    if with_metrics:
        blueprint.add_url_rule("/metrics", view_func=metrics, methods=["GET"])
    blueprint.add_url_rule("/openapi.json", view_func=openapi, methods=["GET"])
    return blueprint
