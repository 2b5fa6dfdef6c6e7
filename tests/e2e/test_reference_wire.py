"""Small wire details as the reference spells them (issue 14), on a real server.

The SSE keep-alive comment, the 403 detail and the titles of the 400s the reference
has too. flwd's codes, ``type`` URIs and extensions (``missing_scopes``) stay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.conftest import run_cli

DEV = {"Authorization": "Bearer dev-token"}
#: How every stream starts (reference §7.1).
PREAMBLE = b"retry: 2000\n:connected\n\n"


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    document: dict[str, Any] = response.json()
    assert document["code"] == code and document["status"] == status
    return document


def test_the_keep_alive_comment_is_the_references_byte_for_byte(dev_server) -> None:
    # The global stream starts at "now": with no run, the first bytes after the
    # preamble are the keep-alive, 15 s later (the read timeout bounds the wait).
    received = b""
    with httpx.stream("GET", f"{dev_server.url}/events", headers=DEV,
                      timeout=httpx.Timeout(10, read=40)) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            received += chunk
            if len(received) >= len(PREAMBLE) + len(b":keep-alive\n\n"):
                break
    assert received == PREAMBLE + b":keep-alive\n\n"


def test_a_403_detail_starts_with_the_references(server_factory, workspace: Path,
                                                 data_dir: Path) -> None:
    made = run_cli([":tokens", "create", "--name", "reader", "--scope", "jobs:read"],
                   cwd=workspace, data_dir=data_dir)
    assert made.returncode == 0, made.stderr
    auth = {"Authorization": f"Bearer {made.stdout.strip()}"}
    server = server_factory()
    refused = problem(httpx.get(f"{server.url}/runs", headers=auth, timeout=30), 403,
                      "forbidden")
    assert refused["title"] == "forbidden"
    assert refused["detail"] == "missing required scope: runs:read"
    assert refused["missing_scopes"] == ["runs:read"]
    both = problem(httpx.get(f"{server.url}/runs/run-x/events", headers=auth, timeout=30),
                   403, "forbidden")
    assert both["detail"] == "missing required scopes: runs:read, events:read"
    assert both["missing_scopes"] == ["runs:read", "events:read"]


def test_the_400s_the_reference_has_carry_its_titles(dev_server) -> None:
    url = dev_server.url
    cases = [
        (httpx.post(f"{url}/runs", headers=DEV, json={"args": {}}, timeout=30),
         "invalid-request-body", "invalid request body"),
        (httpx.post(f"{url}/plans", headers={**DEV, "Content-Type": "application/json"},
                    content=b"{", timeout=30),
         "invalid-request-body", "invalid request body"),
        (httpx.get(f"{url}/runs?per_page=0", headers=DEV, timeout=30),
         "invalid-pagination", "invalid pagination"),
        (httpx.post(f"{url}/runs", headers={**DEV, "Idempotency-Key": "has space"},
                    json={"job_id": "demo", "args": {"name": "x"}}, timeout=30),
         "invalid-idempotency-key", "invalid Idempotency-Key header"),
        # A 400 only flwd has keeps flwd's generic title.
        (httpx.get(f"{url}/runs?status=bogus", headers=DEV, timeout=30),
         "invalid-request", "invalid request"),
    ]
    for response, code, title in cases:
        assert problem(response, 400, code)["title"] == title
    # Nothing was started by a refused request.
    assert httpx.get(f"{url}/runs", headers=DEV, timeout=30).headers["X-Total-Count"] == "0"


def test_an_unknown_extension_refuses_the_start_in_one_line(workspace: Path,
                                                            data_dir: Path) -> None:
    for args, env in (([":serve", "--extension", "export,bogus"], {}),
                      ([":serve"], {"FLWD_EXTENSIONS": "export, Nope"})):
        done = run_cli([*args, "--bind", "127.0.0.1:0", "--no-containers"], cwd=workspace,
                       data_dir=data_dir, timeout=60, **env)
        assert done.returncode == 2, done.stderr
        [line] = done.stderr.splitlines()
        assert line.startswith("flwd: error: ") and "unknown extension" in line
        assert "export" in line and ("'bogus'" in line or "'Nope'" in line)


def test_the_export_extension_is_accepted_and_changes_nothing(server_factory) -> None:
    # --extension wins over FLWD_EXTENSIONS, as in flowd (the bad name there is not read).
    for flags, env in ((("--extension", "export", "--extension", "export"),
                        {"FLWD_EXTENSIONS": "bogus"}),
                       ((), {"FLWD_EXTENSIONS": "EXPORT"})):
        server = server_factory("--dev", *flags, **env)
        created = httpx.post(f"{server.url}/runs", headers=DEV, timeout=30,
                             json={"job_id": "demo", "args": {"name": "Ext"}})
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        # The per-run stream ends after run.finish: reading it waits for the run.
        with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", headers=DEV,
                          timeout=60) as stream:
            for _ in stream.iter_lines():
                pass
        ndjson = httpx.get(f"{server.url}/runs/{run_id}/events.ndjson", headers=DEV,
                           timeout=30)
        assert ndjson.status_code == 200
        assert ndjson.headers["content-type"].startswith("application/x-ndjson")
        server.stop()
    # Served without any extension too: `export` turns nothing on.
    plain = server_factory("--dev")
    assert httpx.get(f"{plain.url}/runs/{run_id}/events.ndjson", headers=DEV,
                     timeout=30).status_code == 200
