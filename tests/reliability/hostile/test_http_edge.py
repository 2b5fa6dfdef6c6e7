"""Hostile clients at the HTTP edge of a real ``flwd :serve`` (Hypercorn on port 0).

Each test is an attack as a client would make it — raw sockets where a library would
normalise the request away, httpx and trio-websocket otherwise: huge cursors, foreign
origins and Host names against ``--dev``, non-JSON bodies, WebSocket handshakes that
must be refused, and metrics label values an anonymous client tries to mint.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.conftest import Server, sse_events

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
