"""``POST /runs`` with ``Accept: text/event-stream``: one request per run (issue 17).

The answer is 201 with the run's SSE stream (the frames of ``GET /runs/<id>/events``)
until ``run.finish``; any other ``Accept`` keeps the JSON answer. A real server on
port 0 over TCP, real HTTP clients.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import scrape, sse_events, start_server, write_job

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


# -- the fast path (flwd.http._fast) answers as the app does -----------------------------


def _wait_until(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Poll ``condition`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        select.select([], [], [], 0.05)
    return result


def _request_log(server: Any, request_id: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        for line in list(server.log):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("msg") == "request" and record.get("request_id") == request_id:
                return dict(record)
        return None

    return dict(_wait_until(found, f"the log line of {request_id}"))


def _stream(url: str, accept: str, request_id: str, body: dict[str, Any]
            ) -> tuple[httpx.Response, list[dict[str, Any]]]:
    with httpx.stream("POST", f"{url}/runs", json=body, timeout=60,
                      headers={**DEV, "Accept": accept, "X-Request-ID": request_id}) as response:
        if response.status_code != 201:
            response.read()
            return response, []
        return response, list(sse_events(response.iter_lines()))


def test_the_fast_path_answers_logs_and_counts_as_the_app(dev_server: Any) -> None:
    # Exactly "text/event-stream" is the fast path's; with a q= it is the app's.
    fast, fast_events = _stream(dev_server.url, "text/event-stream", "fast-1",
                                {"job_id": "demo", "args": {"name": "x"}})
    slow, slow_events = _stream(dev_server.url, "text/event-stream;q=1", "slow-1",
                                {"job_id": "demo", "args": {"name": "x"}})
    assert fast.status_code == slow.status_code == 201
    varying = {"date", "location"}
    assert [(k, v) for k, v in fast.headers.multi_items() if k not in varying] == \
        [(k, v.replace("slow-1", "fast-1")) for k, v in slow.headers.multi_items()
         if k not in varying]
    assert fast.headers["x-request-id"] == "fast-1"
    assert [e["type"] for e in fast_events] == [e["type"] for e in slow_events]
    assert fast_events[-1]["data"]["status"] == "completed"
    assert fast.headers["location"] == f"/runs/{fast_events[0]['run_id']}"
    logged = [_request_log(dev_server, rid) for rid in ("fast-1", "slow-1")]
    for record in logged:
        record.pop("ts"), record.pop("duration_ms"), record.pop("request_id")
    assert logged[0] == logged[1] == {"level": "info", "logger": "flwd.http", "msg": "request",
                                      "method": "POST", "route": "/runs", "status": 201,
                                      "subject": "dev"}
    counted = scrape(dev_server.url)
    key = ("flwd_http_requests_total",
           frozenset({("method", "POST"), ("route", "/runs"), ("code", "201")}))
    assert counted[key] == 2


def test_a_run_that_cannot_start_is_the_same_problem_on_the_fast_path(dev_server: Any) -> None:
    # Refused once submitted (the job is unknown): rendered by the fast path itself.
    answers = [_stream(dev_server.url, accept, f"r-{index}", {"job_id": "nope", "args": {}})[0]
               for index, accept in enumerate(("text/event-stream", "text/event-stream;q=1"))]
    assert [a.status_code for a in answers] == [404, 404]
    assert answers[0].json() == answers[1].json()
    assert answers[0].json()["code"] == "job.not.found"
    assert answers[0].headers["content-type"] == answers[1].headers["content-type"] == \
        "application/problem+json"
    assert _request_log(dev_server, "r-0")["status"] == 404


def test_a_client_leaving_the_stream_gives_its_slot_back(workspace: Path, data_dir: Path,
                                                        server_factory: Any) -> None:
    write_job(workspace, "wait", "interpreter: bash\n", {"100_wait.sh": "exec sleep 120\n"})
    server = server_factory("--dev", "--max-streams", "1")
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    body = json.dumps({"job_id": "wait", "args": {}}).encode()
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(b"POST /runs HTTP/1.1\r\nHost: " + f"{host}:{port}".encode() +
                     b"\r\nAuthorization: Bearer dev-token\r\nAccept: text/event-stream\r\n"
                     b"Content-Type: application/json\r\nContent-Length: " +
                     str(len(body)).encode() + b"\r\n\r\n" + body)
        head = b""
        while b"event: step.start" not in head:
            chunk = sock.recv(65536)
            assert chunk, head
            head += chunk
        assert head.startswith(b"HTTP/1.1 201")
        # The only slot is taken while the stream is open.
        busy = httpx.post(f"{server.url}/runs", json={"job_id": "demo", "args": {"name": "x"}},
                          headers=SSE, timeout=60)
        assert busy.status_code == 503 and busy.json()["code"] == "streams.busy"
    # The client left: its stream ends and the slot is free again (the run goes on).
    _wait_until(lambda: _stream(server.url, "text/event-stream", "after",
                                {"job_id": "demo", "args": {"name": "x"}})[0].status_code == 201,
                "the slot given back")
    runs = httpx.get(f"{server.url}/runs", params={"job_id": "wait"}, headers=DEV,
                     timeout=60).json()
    assert [run["status"] for run in runs] == ["running"]


def test_a_live_runs_events_are_the_same_on_the_fast_path(workspace: Path, data_dir: Path,
                                                          server_factory: Any) -> None:
    write_job(workspace, "wait", "interpreter: bash\n", {"100_wait.sh": "exec sleep 120\n"})
    server = server_factory("--dev")
    run = httpx.post(f"{server.url}/runs", json={"job_id": "wait", "args": {}}, headers=DEV,
                     timeout=60).json()
    # No cursor: the fast path's (a live run); ?after=0 (a cursor): the app's, same frames.
    targets = {"ev-fast": f"/runs/{run['id']}/events", "ev-slow": f"/runs/{run['id']}/events?after=0"}
    with httpx.Client(base_url=server.url, timeout=60) as client:
        opened = {rid: client.stream("GET", target, headers={**DEV, "X-Request-ID": rid})
                  for rid, target in targets.items()}
        responses = {rid: stream.__enter__() for rid, stream in opened.items()}
        try:
            seen: dict[str, list[dict[str, Any]]] = {}
            following = {rid: sse_events(response.iter_lines())
                         for rid, response in responses.items()}
            for rid, events in following.items():
                assert responses[rid].status_code == 200
                seen[rid] = [next(events)]
                while seen[rid][-1]["type"] != "step.start":
                    seen[rid].append(next(events))
            cancel = client.post(f"/runs/{run['id']}:cancel", headers=DEV)
            assert cancel.status_code == 202
            for rid, events in following.items():
                seen[rid] += list(events)
        finally:
            for stream in opened.values():
                stream.__exit__(None, None, None)
    fast, slow = responses["ev-fast"], responses["ev-slow"]
    assert [(k, v) for k, v in fast.headers.multi_items() if k != "date"] == \
        [(k, v.replace("ev-slow", "ev-fast")) for k, v in slow.headers.multi_items()
         if k != "date"]
    assert [e["type"] for e in seen["ev-fast"]] == [e["type"] for e in seen["ev-slow"]]
    assert seen["ev-fast"][-1]["type"] == "run.finish"
    logged = [_request_log(server, rid) for rid in ("ev-fast", "ev-slow")]
    for record in logged:
        record.pop("ts"), record.pop("duration_ms"), record.pop("request_id")
    assert logged[0] == logged[1]
    assert logged[0]["route"] == "/runs/<runid:run_id>/events" and logged[0]["status"] == 200
