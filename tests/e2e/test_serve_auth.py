"""The auth matrix: every route × {no token, wrong token, each scope} against a real server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from flwd.http import SCOPES
from tests.conftest import run_cli

# (method, path template, JSON body, scopes needed); None = open route. A set in the
# scopes is a choice: any one of its scopes will do.
ROUTES: list[tuple[str, str, dict | None, tuple[str | frozenset[str], ...] | None]] = [
    ("GET", "/healthz", None, None),
    ("GET", "/openapi.json", None, None),
    ("GET", "/metrics", None, None),  # open: the server binds loopback
    # The web UI's files: open (they hold no data).
    ("GET", "/", None, None),
    ("GET", "/ui/js/app.js", None, None),
    ("GET", "/jobs", None, ("jobs:read",)),
    ("GET", "/jobs/demo", None, ("jobs:read",)),
    ("POST", "/plans", {"job_id": "demo", "args": {"name": "m"}}, ("jobs:read",)),
    ("POST", "/runs", {"job_id": "demo", "args": {"name": "m"}}, ("runs:write",)),
    ("GET", "/runs", None, ("runs:read",)),
    ("GET", "/runs/{run}", None, ("runs:read",)),
    ("POST", "/runs/{run}:cancel", None, ("runs:write",)),
    ("GET", "/runs/{run}/events", None, ("runs:read", "events:read")),
    ("GET", "/runs/{run}/events.ndjson", None, ("runs:read", "events:read")),
    ("GET", "/runs/{run}/log.txt", None, ("runs:read", "events:read")),
    ("GET", "/runs/{run}/notifications", None, ("runs:read",)),
    ("GET", "/events", None, ("events:read",)),
    ("GET", "/sources", None, ("sources:read",)),
    ("GET", "/sources/none", None, ("sources:read",)),
    ("POST", "/sources", {"type": "local", "name": "x", "ref": "x"}, ("sources:write",)),
    ("DELETE", "/sources/none", None, ("sources:write",)),
    ("POST", "/sources/none:refresh", None, ("sources:write",)),
    ("GET", "/health/storage", None, (frozenset({"jobs:read", "metrics:read"}),)),
    ("GET", "/server", None, ("jobs:read",)),
    # POST /hooks/{name} takes no token of the API (each hook checks its own:
    # tests/e2e/test_hooks.py); listing them is reading the jobs' configuration.
    ("GET", "/hooks", None, ("jobs:read",)),
    ("GET", "/kv/core_triggers", None, ("ruley:read",)),
    ("GET", "/kv/core_triggers/none", None, ("ruley:read",)),
    ("PUT", "/kv/core_triggers/k", {"value": "dg=="}, ("ruley:write",)),
    ("DELETE", "/kv/core_triggers/none", None, ("ruley:write",)),
    # Who the caller is: any valid token, no scope. A logout needs no token.
    ("GET", "/session", None, ()),
    ("DELETE", "/session", None, None),
]


@pytest.fixture
def tokens(workspace: Path, data_dir: Path) -> dict[str, str]:
    minted = {}
    for name, scopes in [*((s.replace(":", "-"), [s]) for s in SCOPES),
                         ("stream", ["runs:read", "events:read"]), ("all", ["*"])]:
        created = run_cli([":tokens", "create", "--name", name,
                           *(arg for s in scopes for arg in ("--scope", s))],
                          cwd=workspace, data_dir=data_dir)
        assert created.returncode == 0, created.stderr
        token = created.stdout.strip()
        assert token.startswith("flwd_")
        minted[name] = token
    stored = (data_dir / "tokens.json").read_text()
    assert not any(token in stored for token in minted.values()), "only digests are stored"
    return minted


def _call(url: str, method: str, path: str, body: dict | None, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    with httpx.stream(method, url + path, json=body, headers=headers, timeout=30) as response:
        return response.status_code  # streams (SSE) are closed without reading them


def test_every_route_for_every_scope(server_factory, tokens: dict[str, str]) -> None:
    server = server_factory()
    created = httpx.post(f"{server.url}/runs", json={"job_id": "demo", "args": {"name": "x"}},
                         headers={"Authorization": f"Bearer {tokens['all']}"})
    assert created.status_code == 201
    run_id = created.json()["id"]
    with httpx.stream("GET", f"{server.url}/runs/{run_id}/events",
                      headers={"Authorization": f"Bearer {tokens['all']}"}) as response:
        for _ in response.iter_lines():
            pass  # wait until the run finished
    checked = 0
    for method, template, body, needed in ROUTES:
        path = template.format(run=run_id)
        no_token = _call(server.url, method, path, body, None)
        wrong = _call(server.url, method, path, body, "flwd_not-a-real-token")
        if needed is None:
            assert no_token < 400 and wrong < 400, (method, path, no_token, wrong)
            continue
        assert (no_token, wrong) == (401, 401), (method, path)
        for name, token in tokens.items():
            scopes = set(SCOPES) if name == "all" else (
                {"runs:read", "events:read"} if name == "stream" else {name.replace("-", ":")})
            status = _call(server.url, method, path, body, token)
            if all(scopes & need if isinstance(need, frozenset) else need in scopes
                   for need in needed):
                assert status not in (401, 403), (method, path, name, status)
            else:
                assert status == 403, (method, path, name, status)
            checked += 1
    assert checked == sum(needed is not None for *_, needed in ROUTES) * len(tokens)
    assert server.stop() == 0
    log = "".join(server.log)
    for token in tokens.values():
        assert token not in log, "a token leaked into the server log"
    assert "flwd_not-a-real-token" not in log


def test_problem_shapes_for_auth_failures(server_factory, tokens: dict[str, str]) -> None:
    server = server_factory()
    missing = httpx.get(f"{server.url}/jobs")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["code"] == "unauthorized"
    denied = httpx.get(f"{server.url}/jobs",
                       headers={"Authorization": f"Bearer {tokens['runs-read']}"})
    assert denied.status_code == 403 and denied.json()["missing_scopes"] == ["jobs:read"]
    # dev-token means nothing outside --dev.
    assert httpx.get(f"{server.url}/jobs", headers={
        "Authorization": "Bearer dev-token"}).status_code == 401


def test_metrics_need_a_token_off_loopback_rule(server_factory, tokens: dict[str, str]) -> None:
    # The rule itself (loopback → open) is exercised above; a non-loopback bind cannot be
    # reached portably in CI, so check the decision function directly.
    from flwd.http._serve import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")


def test_token_cli_rejects_bad_scopes(workspace: Path, data_dir: Path) -> None:
    bad = run_cli([":tokens", "create", "--name", "x", "--scope", "runs:delete"], cwd=workspace,
                  data_dir=data_dir)
    assert bad.returncode == 2 and "unknown scope runs:delete" in bad.stderr
    assert not (data_dir / "tokens.json").exists()
