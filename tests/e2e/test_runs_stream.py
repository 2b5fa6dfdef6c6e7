"""``POST /runs`` with ``Accept: text/event-stream``: one request per run (issue 17).

The answer is 201 with the run's SSE stream (the frames of ``GET /runs/<id>/events``)
until ``run.finish``; any other ``Accept`` keeps the JSON answer. A real server on
port 0 over TCP, real HTTP clients.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.conftest import sse_events, start_server

DEV = {"Authorization": "Bearer dev-token"}
SSE = {**DEV, "Accept": "text/event-stream"}


def test_the_run_and_its_events_in_one_request(dev_server: Any) -> None:
    with httpx.stream("POST", f"{dev_server.url}/runs", headers=SSE, timeout=60,
                      json={"job_id": "demo", "args": {"name": "Alice"}}) as response:
        assert response.status_code == 201
        assert response.headers["content-type"] == "text/event-stream"
        run_id = response.headers["location"].removeprefix("/runs/")
        events = list(sse_events(response.iter_lines()))
    assert events[0]["type"] == "run.start"
    assert events[-1]["type"] == "run.finish" and events[-1]["data"]["status"] == "completed"
    assert {event["run_id"] for event in events} == {run_id}
    assert any(event["data"].get("message") == "demo: Hello, Alice!" for event in events)
    # The same frames as the run's own stream, replayed afterwards.
    with httpx.stream("GET", f"{dev_server.url}/runs/{run_id}/events", headers=DEV,
                      timeout=60) as replay:
        assert list(sse_events(replay.iter_lines())) == events


def test_json_stays_the_answer_for_other_accept_values(dev_server: Any) -> None:
    for accept in (None, "*/*", "application/json", "application/json, text/event-stream",
                   "text/event-stream;q=0.1, application/json"):
        headers = {**DEV, **({"Accept": accept} if accept else {})}
        response = httpx.post(f"{dev_server.url}/runs", headers=headers, timeout=60,
                              json={"job_id": "demo", "args": {"name": "x"}})
        assert response.status_code == 201, (accept, response.text)
        assert response.json()["status"] == "queued", accept


def test_a_refused_request_is_a_problem_and_starts_nothing(dev_server: Any) -> None:
    response = httpx.post(f"{dev_server.url}/runs", headers=SSE, timeout=60,
                          json={"job_id": "demo", "args": {"nope": 1}})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert httpx.get(f"{dev_server.url}/runs", headers=DEV, timeout=60).json() == []


def test_the_stream_needs_the_scopes_of_reading_events(workspace: Path, data_dir: Path,
                                                       tmp_path: Path) -> None:
    from tests.conftest import run_cli

    tokens = tmp_path / "tokens.json"
    made = run_cli([":tokens", "create", "--name", "writer", "--scope", "runs:write",
                    "--tokens", str(tokens)], cwd=workspace, data_dir=data_dir)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    server = start_server(workspace, data_dir, "--tokens", str(tokens))
    try:
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        response = httpx.post(f"{server.url}/runs", headers=headers, timeout=60,
                              json={"job_id": "demo", "args": {"name": "x"}})
        assert response.status_code == 403, response.text
        assert "runs:read" in response.json()["detail"]
        # Nothing was started: the refusal came first.
        listing = httpx.get(f"{server.url}/runs", timeout=60,
                            headers={"Authorization": f"Bearer {token}"})
        assert listing.status_code == 403
        assert run_cli([":runs", "--all", "--json"], cwd=workspace,
                       data_dir=data_dir, FLWD_LOCAL="1").stdout.strip() == "[]"
        plain = httpx.post(f"{server.url}/runs", timeout=60,
                           headers={"Authorization": f"Bearer {token}"},
                           json={"job_id": "demo", "args": {"name": "x"}})
        assert plain.status_code == 201
    finally:
        server.stop()
