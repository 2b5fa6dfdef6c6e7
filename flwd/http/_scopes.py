"""Which scopes each HTTP endpoint needs, and which endpoints need no token at all.

Kept apart from the app's assembly (``_app``) so that a blueprint added for a new
resource adds its lines here; ``tests/unit/test_http_routes.py`` pins the table by
method and rule.
"""

from __future__ import annotations

from ._auth import AnyScope, Requirement

__all__ = ["OPEN_ENDPOINTS", "ROUTE_SCOPES"]

#: Scopes each endpoint (``blueprint.handler``) needs: every requirement of its tuple,
#: a scope or an ``AnyScope`` (any one of several). An endpoint not listed needs a
#: valid token and no scope; one in OPEN_ENDPOINTS needs no token at all.
ROUTE_SCOPES: dict[str, tuple[Requirement, ...]] = {
    "jobs.list_jobs": ("jobs:read",),
    "jobs.list_discovery_issues": ("jobs:read",),
    "jobs.get_job": ("jobs:read",),
    "jobs.create_plan": ("jobs:read",),
    "runs.create_run": ("runs:write",),
    "runs.list_runs": ("runs:read",),
    "runs.get_run": ("runs:read",),
    "runs.cancel_run": ("runs:write",),
    "runs.list_notifications": ("runs:read",),
    "events.run_events": ("runs:read", "events:read"),
    "events.run_events_ndjson": ("runs:read", "events:read"),
    "events.run_log_text": ("runs:read", "events:read"),
    "events.run_ws": ("runs:read", "events:read"),
    "events.all_events": ("events:read",),
    "sources.list_sources": ("sources:read",),
    "sources.get_source": ("sources:read",),
    "sources.add_source": ("sources:write",),
    "sources.delete_source": ("sources:write",),
    "sources.refresh_source": ("sources:write",),
    # The Rule-Y KV, with the reference's scope names.
    "kv.read_kv": ("ruley:read",),
    "kv.put_kv": ("ruley:write",),
    "kv.delete_kv": ("ruley:write",),
    # The reference's scope, and the one flwd asked before.
    "ops.storage_health": (AnyScope(("jobs:read", "metrics:read")),),
    "ops.metrics": ("metrics:read",),
    "ops.server_info": ("jobs:read",),
    # Who executes runs: read like the server's own status and its metrics.
    "ops.cluster": (AnyScope(("jobs:read", "metrics:read")),),
    "hooks.list_hooks": ("jobs:read",),
    # Schedules are read like jobs; pausing, resuming and firing one decide runs.
    "schedules.list_schedules": ("jobs:read",),
    "schedules.get_schedule": ("jobs:read",),
    "schedules.pause_schedule": ("runs:write",),
    "schedules.resume_schedule": ("runs:write",),
    "schedules.trigger_schedule": ("runs:write",),
}
#: The web UI's files hold no data (its pages ask the API, with credentials). A login
#: and a logout need no token (``GET /session`` needs one, and no scope).
OPEN_ENDPOINTS = frozenset({"ops.healthz", "ops.openapi", "ui.index", "ui.asset",
                            "session.create_session", "session.delete_session",
                            # Each hook authenticates its requests itself (flwd.hooks).
                            "hooks.trigger_hook"})
