"""Smoke test of the server fixture itself: it starts, answers, and stops cleanly."""

from __future__ import annotations

import httpx


def test_server_starts_answers_and_stops(dev_server) -> None:
    response = httpx.get(f"{dev_server.url}/healthz")
    assert response.status_code == 204
    assert dev_server.stop() == 0
