"""The route table of the HTTP app: which scopes each route needs, and which rule answers.

Endpoint names carry their blueprint (``runs.create_run``) and the scope table
is keyed on them: a route renamed or moved without its entry would still
authenticate but need no scope. Pinned here by method and rule instead.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
from werkzeug.exceptions import NotFound

from flwd.http import ServeOptions, create_app
from flwd.http._app import OPEN_ENDPOINTS, ROUTE_SCOPES
from flwd.http._auth import AnyScope
from flwd.http._metrics import Metrics

OPEN = "open"
#: (method, rule) → the scopes it needs; "WS" is the WebSocket.
EXPECTED: dict[tuple[str, str], tuple[str | AnyScope, ...] | str] = {
    # Either: the reference's jobs:read, or metrics:read (flwd's scope before).
    ("GET", "/health/storage"): (AnyScope(("jobs:read", "metrics:read")),),
    ("GET", "/healthz"): OPEN,
    ("GET", "/jobs"): ("jobs:read",),
    ("GET", "/discovery"): ("jobs:read",),
    ("GET", "/jobs/<path:job_id>"): ("jobs:read",),
    ("POST", "/plans"): ("jobs:read",),
    ("POST", "/runs"): ("runs:write",),
    ("GET", "/runs"): ("runs:read",),
    ("GET", "/runs/<runid:run_id>"): ("runs:read",),
    ("POST", "/runs/<runid:run_id>:cancel"): ("runs:write",),
    ("GET", "/runs/<runid:run_id>/notifications"): ("runs:read",),
    ("GET", "/runs/<runid:run_id>/events"): ("runs:read", "events:read"),
    ("GET", "/events"): ("events:read",),
    ("GET", "/runs/<runid:run_id>/events.ndjson"): ("runs:read", "events:read"),
    ("GET", "/runs/<runid:run_id>/log.txt"): ("runs:read", "events:read"),
    ("WS", "/runs/<runid:run_id>/ws"): ("runs:read", "events:read"),
    ("GET", "/sources"): ("sources:read",),
    ("GET", "/sources/<source_name:name>"): ("sources:read",),
    ("POST", "/sources"): ("sources:write",),
    ("POST", "/sources/<source_name:name>:refresh"): ("sources:write",),
    ("DELETE", "/sources/<source_name:name>"): ("sources:write",),
    ("GET", "/kv/<kvpath:path>"): ("ruley:read",),
    ("PUT", "/kv/<namespace>/<kvkey:key>"): ("ruley:write",),
    ("DELETE", "/kv/<namespace>/<kvkey:key>"): ("ruley:write",),
    ("GET", "/metrics"): ("metrics:read",),
    ("GET", "/openapi.json"): OPEN,
    ("GET", "/server"): ("jobs:read",),
    ("GET", "/cluster"): (AnyScope(("jobs:read", "metrics:read")),),
    ("GET", "/schedules"): ("jobs:read",),
    ("GET", "/schedules/<schedule_name:name>"): ("jobs:read",),
    ("POST", "/schedules/<schedule_name:name>:pause"): ("runs:write",),
    ("POST", "/schedules/<schedule_name:name>:resume"): ("runs:write",),
    ("POST", "/schedules/<schedule_name:name>:trigger"): ("runs:write",),
    # The web UI's files (they hold no data); not there with --ui=false.
    ("GET", "/"): OPEN,
    ("GET", "/ui/<path:asset_path>"): OPEN,
    # A login takes its token in the body, a logout needs none; GET needs any credentials.
    ("POST", "/session"): OPEN,
    ("GET", "/session"): (),
    ("DELETE", "/session"): OPEN,
    # Inbound webhooks: each hook authenticates its requests itself (HMAC, a token with
    # hooks:trigger, addresses); listing them is reading the jobs' configuration.
    ("POST", "/hooks/<hookname:name>"): OPEN,
    ("GET", "/hooks"): ("jobs:read",),
}
UI_ROUTES = {("GET", "/"), ("GET", "/ui/<path:asset_path>")}


def _app(*, metrics: bool = True, ui: bool = True) -> Any:
    # Building the app asks the engine nothing: no engine is needed to read its routes.
    return create_app(cast(Any, None), ServeOptions(metrics=metrics, ui=ui), cast(Any, None),
                      Metrics("secure") if metrics else None)


def _table(app: Any) -> dict[tuple[str, str], tuple[str | AnyScope, ...] | str]:
    table: dict[tuple[str, str], tuple[str | AnyScope, ...] | str] = {}
    for rule in app.url_map.iter_rules():
        methods = sorted(set(rule.methods or ()) - {"HEAD", "OPTIONS"})
        assert len(methods) == 1, rule
        key = ("WS" if rule.websocket else methods[0], rule.rule)
        table[key] = (OPEN if rule.endpoint in OPEN_ENDPOINTS
                      else ROUTE_SCOPES.get(rule.endpoint, ()))
    return table


def test_every_route_needs_the_scopes_it_always_needed() -> None:
    assert _table(_app()) == EXPECTED


def test_every_scoped_endpoint_exists() -> None:
    endpoints = {rule.endpoint for rule in _app().url_map.iter_rules()}
    assert set(ROUTE_SCOPES) | OPEN_ENDPOINTS <= endpoints


def test_without_metrics_there_is_no_metrics_route() -> None:
    assert _table(_app(metrics=False)) == {
        key: value for key, value in EXPECTED.items() if key != ("GET", "/metrics")}
    with pytest.raises(NotFound):
        _app(metrics=False).url_map.bind("localhost").match("/metrics", "GET")


def test_without_the_ui_there_is_no_ui_route() -> None:
    assert _table(_app(ui=False)) == {
        key: value for key, value in EXPECTED.items() if key not in UI_ROUTES}


@pytest.mark.parametrize(("path", "endpoint"), [
    ("/runs", "runs.create_run"), ("/sources", "sources.list_sources")])
def test_options_is_routed_to_the_first_rule_of_a_path(path: str, endpoint: str) -> None:
    # An OPTIONS request (a CORS preflight) is authorized as the first rule of its path.
    rule, _ = _app().url_map.bind("localhost").match(path, "OPTIONS", return_rule=True)
    assert rule.endpoint == endpoint
