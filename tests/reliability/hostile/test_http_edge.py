"""Hostile clients at the HTTP edge of a real ``flwd :serve`` (Hypercorn on port 0).

Each test is an attack as a client would make it — raw sockets where a library would
normalise the request away, httpx and trio-websocket otherwise: huge cursors, foreign
origins and Host names against ``--dev``, non-JSON bodies, WebSocket handshakes that
must be refused, and metrics label values an anonymous client tries to mint.
"""

from __future__ import annotations

import json
import random
import re
import socket
import string
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


def raw_request(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` exactly as given on a new connection; the status, headers and body
    (``Content-Length`` bytes) of the answer."""
    address = urlparse(url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"the server closed the connection without an answer: {received!r}"
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        while len(body) < int(headers.get("content-length", "0")):
            chunk = sock.recv(65536)
            assert chunk, "the server closed the connection in the middle of the body"
            body += chunk
    return int(status_line.split()[1]), headers, body


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
        # ?last_event_id= is the reference's other spelling of Last-Event-ID (its title).
        assert problem["title"] == ("invalid Last-Event-ID" if "last_event_id" in path
                                    else "invalid ?after=")
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


def ws_handshake(url: str, path: str, headers: dict[str, str] | None = None, *,
                 host: str | None = None) -> tuple[int, dict[str, str], bytes]:
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
                    ws = await wrap_client_stream(nursery, stream, host or address.netloc, path,
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


# -- --dev: origins, Host names, content types ------------------------------------------------

FOREIGN_ORIGINS = [
    "http://localhost.evil.example",     # a prefix match took these two for localhost
    "http://localhost@evil.example",
    "http://127.0.0.1.nip.io",
    "http://localhost:3000.evil.example",
    "http://evil.example",
    "https://evil.example:443",
    "null",                               # sandboxed iframes, file:// pages
    "http://[::1].evil.example",
    "ftp://localhost",
]
LOOPBACK_ORIGINS = ["http://localhost", "http://localhost:3000", "https://127.0.0.1:8443",
                    "http://127.0.0.1", "http://[::1]:5173"]


def test_dev_cors_matches_loopback_origins_exactly(dev_server: Server) -> None:
    url = dev_server.url
    for origin in FOREIGN_ORIGINS:
        refused = httpx.get(f"{url}/jobs", headers={"Origin": origin}, timeout=30)
        assert_problem(refused, 403, "origin.not.allowed")
        assert "access-control-allow-origin" not in refused.headers, origin
        preflight = httpx.options(f"{url}/runs", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"}, timeout=30)
        assert "access-control-allow-origin" not in preflight.headers, origin
    for origin in LOOPBACK_ORIGINS:
        served = httpx.get(f"{url}/jobs", headers={"Origin": origin}, timeout=30)
        assert served.status_code == 200, (origin, served.text)
        assert served.headers["access-control-allow-origin"] == origin
        assert "Origin" in served.headers["vary"]
        preflight = httpx.options(f"{url}/runs", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, idempotency-key, idempotency-sha256"},
            timeout=30)
        assert preflight.headers["access-control-allow-origin"] == origin
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert set(preflight.headers["access-control-allow-headers"].split(", ")) == {
            "content-type", "idempotency-key", "idempotency-sha256"}


def _post_runs(url: str, content_type: str | None, *extra: str) -> tuple[int, bytes]:
    """POST /runs on a raw socket, as a browser's form or no-preflight fetch() would: no
    token, the JSON of a valid run as the body."""
    body = b'{"job_id": "demo", "args": {"name": "csrf"}}'
    host = urlparse(url).netloc
    lines = ["POST /runs HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}",
             "Connection: close", *extra]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    status, _, answer = raw_request(url, ("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return status, answer


def test_a_cross_site_form_post_starts_no_run(dev_server: Server) -> None:
    """Regression: a cross-site ``application/x-www-form-urlencoded`` POST without a token
    started a run (201) on a --dev server."""
    url = dev_server.url
    for content_type in ("application/x-www-form-urlencoded", "text/plain",
                         "multipart/form-data; boundary=x", None, "application/json-seq",
                         "text/json", "application/problem+json"):
        status, answer = _post_runs(url, content_type)
        assert status == 415, (content_type, answer)
        assert json.loads(answer)["code"] == "unsupported-media-type"
        # From a foreign page the Origin alone refuses it, whatever the type.
        status, answer = _post_runs(url, content_type, "Origin: http://evil.example")
        assert status == 403, (content_type, answer)
    listed = httpx.get(f"{url}/runs", headers=DEV, timeout=30)
    assert listed.json() == [], "a refused request started a run"
    # A local tool sending JSON is served.
    status, answer = _post_runs(url, "application/json; charset=utf-8",
                                "Origin: http://localhost:3000")
    assert status == 201, answer


def test_dev_answers_only_loopback_host_names(dev_server: Server) -> None:
    """Regression (DNS rebinding): a request naming ``Host: rebind.attacker.example`` was
    served by a --dev server."""
    url = dev_server.url
    port = urlparse(url).port

    def get(host_line: str, version: str = "HTTP/1.1") -> int:
        request = f"GET /runs {version}\r\n{host_line}Connection: close\r\n\r\n"
        return raw_request(url, request.encode())[0]

    for host in ("rebind.attacker.example", f"rebind.attacker.example:{port}",
                 f"localhost.attacker.example:{port}", f"127.0.0.1.nip.io:{port}",
                 f"localhost:{port}@attacker.example", "localhost.", f"[::1]x:{port}"):
        assert get(f"Host: {host}\r\n") == 421, host
    assert get("", "HTTP/1.0") == 421  # no Host at all
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST",
                 "127.0.0.1"):
        assert get(f"Host: {host}\r\n") == 200, host
    problem = assert_problem(httpx.get(f"{url}/runs", headers={"Host": "rebind.example"},
                                       timeout=30), 421, "host.not.allowed")
    assert "rebind.example" in problem["detail"]


def test_dev_websockets_check_origin_and_host(dev_server: Server) -> None:
    url = dev_server.url
    run = finished_run(url)
    path = f"/runs/{run['id']}/ws"
    for origin in FOREIGN_ORIGINS:
        ws_problem(ws_handshake(url, path, {"Origin": origin}), 403, "origin.not.allowed")
    ws_problem(ws_handshake(url, path, host="rebind.attacker.example"), 421,
               "host.not.allowed")
    for origin in LOOPBACK_ORIGINS:
        assert ws_handshake(url, path, {"Origin": origin})[0] == 101, origin
    assert ws_handshake(url, path)[0] == 101  # a tool sends no Origin


# -- metrics label cardinality -----------------------------------------------------------------


def _label_values(text: str, label: str) -> set[str]:
    return set(re.findall(rf'{label}="([^"]*)"', text))


def test_made_up_methods_and_paths_do_not_grow_metrics(dev_server: Server) -> None:
    """Regression: each unknown HTTP method became a new ``method`` label value (20,000
    requests made a 36 MB /metrics that took 4.8 s to scrape)."""
    url = dev_server.url
    chooser = random.Random(20261203)
    with httpx.Client(base_url=url, timeout=30) as client:
        client.get("/healthz")
        before = client.get("/metrics").text
        for n in range(2000):
            method = "".join(chooser.choices(string.ascii_uppercase, k=10))
            path = chooser.choice(["/runs", "/jobs", f"/x{n}/{chooser.random()}",
                                   f"/runs/run-{n}", f"/%7e{n}"])
            response = client.request(method, path)
            assert response.status_code in (404, 405), (method, path, response.status_code)
        after = client.get("/metrics").text
    assert len(after) < len(before) + 20_000, f"/metrics grew by {len(after) - len(before)} bytes"
    assert _label_values(after, "method") <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
                                              "OPTIONS", "other"}
    routes = _label_values(after, "route")
    assert "(unmatched)" in routes
    assert all(route.startswith("/") or route == "(unmatched)" for route in routes)
    assert not any(f"/x{n}/" in route or f"run-{n}" in route for n in range(2000)
                   for route in routes), "a raw path became a label value"
    # What alerts rely on exists before anything happened; no *_created series; the
    # process collector; WebSockets counted apart from SSE.
    assert 'flwd_runs_total{status="failed"} 0.0' in after
    assert "_created" not in after
    assert "process_resident_memory_bytes" in after and "process_open_fds" in after
    assert "flwd_websocket_active_connections" in after


def test_client_text_is_echoed_bounded(dev_server: Server) -> None:
    """What a client sends comes back (headers, problems, logs) only in bounded form."""
    url = dev_server.url
    echoed = httpx.get(f"{url}/healthz", headers={"X-Request-ID": "deploy-42.a:b"}, timeout=30)
    assert echoed.headers["x-request-id"] == "deploy-42.a:b"
    for given in (b"x" * 8000, b"a b", b"\xe9t\xe9"):
        answer = httpx.get(f"{url}/healthz", headers={"X-Request-ID": given}, timeout=30)
        assert re.fullmatch(r"[0-9a-f]{16}", answer.headers["x-request-id"]), given[:20]
    problem = assert_problem(httpx.get(f"{url}/runs?status={'q' * 10000}", headers=DEV,
                                       timeout=30), 400, "invalid-request")
    assert len(problem["detail"]) < 200
    assert not any("x" * 200 in line or "q" * 200 in line for line in dev_server.log)
