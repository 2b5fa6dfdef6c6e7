"""Smoke test of the server fixture itself: it starts, answers, and stops cleanly."""

from __future__ import annotations

import httpx


def test_server_starts_answers_and_stops(dev_server) -> None:
    response = httpx.get(f"{dev_server.url}/healthz")
    assert response.status_code == 204
    assert dev_server.stop() == 0


def test_log_json_is_one_json_object_per_line(dev_server) -> None:
    import json

    assert httpx.get(f"{dev_server.url}/jobs", headers={"Authorization": "Bearer dev-token"},
                     timeout=30).status_code == 200
    assert dev_server.stop() == 0
    lines = [line for line in dev_server.log if line.strip()]
    records = [json.loads(line) for line in lines]  # hypercorn's own lines included
    assert {record["logger"] for record in records} >= {"flwd.serve", "hypercorn.error",
                                                        "flwd.http"}
