"""Hostile clients at the HTTP edge of a real ``flwd :serve`` (Hypercorn on port 0).

Each test is an attack as a client would make it — raw sockets where a library would
normalise the request away, httpx and trio-websocket otherwise: huge cursors, foreign
origins and Host names against ``--dev``, non-JSON bodies, WebSocket handshakes that
must be refused, and metrics label values an anonymous client tries to mint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.conftest import Server, run_cli, sse_events

DEV = {"Authorization": "Bearer dev-token"}


def finished_run(url: str) -> dict[str, Any]:
    """A run of ``demo`` that has finished (its SSE stream read to the end)."""
    created = httpx.post(f"{url}/runs", json={"job_id": "demo", "args": {"name": "h"}},
                         headers=DEV, timeout=30)
    assert created.status_code == 201, created.text
    run: dict[str, Any] = created.json()
    with httpx.stream("GET", f"{url}/runs/{run['id']}/events", headers=DEV,
                      timeout=60) as response:
        events = list(sse_events(response.iter_lines()))
    assert events[-1]["type"] == "run.finish"
    run["last_seq"] = events[-1]["seq"]
    return run


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status and problem["code"] == code, problem
    return problem


# -- cursors ----------------------------------------------------------------------------------

HUGE = str(2**63)


def test_a_cursor_sqlite_cannot_hold_is_a_400_before_any_byte_of_a_stream(
        dev_server: Server) -> None:
    """Regression: ``Last-Event-ID: 2**63`` answered 200, then the chunked body was cut by
    an OverflowError from SQLite."""
    url = dev_server.url
    run = finished_run(url)
    for path, headers in [
            (f"/runs/{run['id']}/events", {"Last-Event-ID": HUGE}),
            ("/events", {"Last-Event-ID": HUGE}),
            (f"/runs/{run['id']}/events.ndjson", {"Last-Event-ID": HUGE})]:
        problem = assert_problem(httpx.get(url + path, headers={**DEV, **headers}, timeout=30),
                                 400, "invalid-cursor")
        assert problem["title"] == "invalid Last-Event-ID"
        assert "from 0 to 9223372036854775807" in problem["detail"]
    for path in (f"/runs/{run['id']}/events?after={HUGE}", f"/events?after={HUGE}",
                 f"/runs/{run['id']}/events.ndjson?after=1{'0' * 5000}",
                 f"/runs/{run['id']}/events?last_event_id=-1"):
        problem = assert_problem(httpx.get(url + path, headers=DEV, timeout=30),
                                 400, "invalid-cursor")
        assert problem["title"] in ("invalid ?after=", "invalid ?last_event_id=")
        assert len(problem["detail"]) < 200  # never the whole value back

    # The largest seq SQLite holds is a valid cursor.
    top = str(2**63 - 1)
    ended = httpx.get(f"{url}/runs/{run['id']}/events", headers={**DEV, "Last-Event-ID": top},
                      timeout=30)
    assert ended.status_code == 204  # after the run's last event: the stream has ended
    empty = httpx.get(f"{url}/runs/{run['id']}/events.ndjson?after={top}", headers=DEV,
                      timeout=30)
    assert empty.status_code == 200 and empty.content == b""
    replay = httpx.get(f"{url}/runs/{run['id']}/events.ndjson?after=0", headers=DEV, timeout=30)
    assert [json.loads(line)["seq"] for line in replay.text.splitlines()][-1] == run["last_seq"]


def test_every_integer_query_parameter_is_checked(dev_server: Server) -> None:
    queries = [
        "page=%C2%B2",                # '²': str.isdigit() says yes, int() raises (was a 500)
        "per_page=%D9%A1%D9%A0",      # Arabic-Indic '10': int() would accept it
        f"page=1{'0' * 5000}",        # more digits than int() converts (was a 500)
        "page=0", "per_page=201", "page=-1",
    ]
    for query in queries:
        for path in ("/runs", "/jobs", "/sources"):
            problem = assert_problem(httpx.get(f"{dev_server.url}{path}?{query}", headers=DEV,
                                               timeout=30), 400, "invalid-pagination")
            assert problem["errors"][0]["arg"] in ("page", "per_page")
            assert len(problem["detail"]) < 200


# -- WebSocket refusals ----------------------------------------------------------------------


def ws_handshake(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[
        int, dict[str, str], bytes]:
    """A WebSocket handshake with trio-websocket: (101, {}, b"") when accepted, else the
    refusal's status, headers and body. The TCP stream is ours, so it is closed whatever
    happens (trio-websocket leaves a refused connection's socket to the collector)."""
    import trio
    from trio_websocket import ConnectionRejected, wrap_client_stream

    address = urlparse(url)
    assert address.hostname is not None and address.port is not None
    extra = [(name.encode(), value.encode()) for name, value in (headers or {}).items()]

    async def main() -> tuple[int, dict[str, str], bytes]:
        refusals: list[ConnectionRejected] = []
        stream = await trio.open_tcp_stream(address.hostname, address.port)
        async with stream:
            try:
                async with trio.open_nursery() as nursery:
                    ws = await wrap_client_stream(nursery, stream, address.netloc, path,
                                                  extra_headers=extra)
                    await ws.aclose()
            except* ConnectionRejected as group:  # from the handshake and the reader task
                refusals.extend(leaf for leaf in _leaves(group)
                                if isinstance(leaf, ConnectionRejected))
        if not refusals:
            return 101, {}, b""
        refused = refusals[0]
        return (refused.status_code,
                {k.decode().lower(): v.decode() for k, v in refused.headers or ()},
                refused.body or b"")

    return trio.run(main)


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    return [leaf for exc in group.exceptions
            for leaf in (_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])]


def ws_problem(result: tuple[int, dict[str, str], bytes], status: int,
               code: str) -> dict[str, Any]:
    got, headers, body = result
    assert got == status, (got, body)
    assert headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = json.loads(body)
    assert problem["status"] == status and problem["code"] == code, problem
    return problem


@pytest.fixture
def reader_token(workspace: Path, data_dir: Path) -> str:
    """A token with ``runs:read`` only (a WebSocket also needs ``events:read``)."""
    created = run_cli([":tokens", "create", "--name", "reader", "--scope", "runs:read"],
                      cwd=workspace, data_dir=data_dir)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def test_websocket_refusals_are_problems_not_500s(server_factory: Any,
                                                  reader_token: str) -> None:
    """Regression: every refused handshake answered 500 ("Not within a request context" in
    the problem handler)."""
    server = server_factory()  # not --dev: tokens decide
    url = server.url
    ws_problem(ws_handshake(url, "/runs/run-x/ws"), 401, "unauthorized")
    refused = ws_handshake(url, "/runs/run-x/ws", {"Authorization": "Bearer flwd_wrong"})
    ws_problem(refused, 401, "unauthorized")
    assert refused[1]["www-authenticate"].startswith("Bearer")
    missing = ws_problem(ws_handshake(url, "/runs/run-x/ws",
                                      {"Authorization": f"Bearer {reader_token}"}),
                         403, "forbidden")
    assert missing["missing_scopes"] == ["events:read"]
    assert missing["instance"] == "/runs/run-x/ws"
    assert not any("Traceback" in line or "internal" in line for line in server.log)


def test_websocket_to_an_unknown_run_or_route_is_a_404(dev_server: Server) -> None:
    url = dev_server.url
    ws_problem(ws_handshake(url, "/runs/run-nope/ws"), 404, "run.not.found")
    ws_problem(ws_handshake(url, "/nowhere"), 404, "route.not.found")
    # A path with HTTP routes only: no WebSocket route there (not a 405 listing HTTP methods).
    problem = ws_problem(ws_handshake(url, "/runs"), 404, "route.not.found")
    assert problem["detail"] == "no WebSocket route at /runs"
    # And the other way round: plain HTTP to the WebSocket route must upgrade.
    upgrade = assert_problem(httpx.get(f"{url}/runs/run-nope/ws", headers=DEV, timeout=30),
                             426, "upgrade.required")
    assert upgrade["instance"] == "/runs/run-nope/ws"
    run = finished_run(url)
    status, _, _ = ws_handshake(url, f"/runs/{run['id']}/ws")
    assert status == 101  # the refusals above are not everything being refused
    assert not any("Traceback" in line for line in dev_server.log)
