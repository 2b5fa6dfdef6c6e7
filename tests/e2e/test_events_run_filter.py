"""``GET /events?run_id=R`` streams that run's events only (issue 14, item 3; reference §7.2)."""

from __future__ import annotations

import httpx

from tests.conftest import sse_events

DEV = {"Authorization": "Bearer dev-token"}


def _start(url: str, name: str) -> str:
    response = httpx.post(f"{url}/runs", json={"job_id": "demo", "args": {"name": name}},
                          headers=DEV)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_run_id_filters_the_global_stream(dev_server) -> None:
    first = _start(dev_server.url, "first")
    with httpx.stream("GET", f"{dev_server.url}/events", params={"run_id": first},
                      headers=DEV, timeout=60) as response:
        assert response.status_code == 200
        # Another run while the stream is open: its events must not reach it.
        second = _start(dev_server.url, "second")
        events = []
        for event in sse_events(response.iter_lines()):  # ends after the run's run.finish
            events.append(event)
            if event["run_id"] != first or event["type"] == "run.finish":
                break  # a foreign event fails below, without waiting for more
    assert {event["run_id"] for event in events} == {first}
    assert events[0]["type"] == "run.start" and events[-1]["type"] == "run.finish"
    assert second != first


def test_unknown_and_malformed_run_ids_are_problems(dev_server) -> None:
    with httpx.stream("GET", f"{dev_server.url}/events", params={"run_id": "run-nope"},
                      headers=DEV, timeout=60) as missing:  # headers only: no endless stream
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
    with httpx.stream("GET", f"{dev_server.url}/events", params={"run_id": "a/b\x01"},
                      headers=DEV, timeout=60) as bad:
        assert bad.status_code == 400
        body = bad.read().decode()
    assert '"invalid-run-id"' in body and "\x01" not in body
