"""Text that is not text, sent to a real ``flwd :serve`` while other runs stream.

Regression (issue 11 item 1): ``POST /runs {"args": {"name": "x\\udc80y"}}`` answered 500
after a ``UnicodeEncodeError`` crashed the journal actor; every live run crashed with it
and stayed ``running``, its SSE stream ended without ``run.finish``, and a few such
requests stopped the server (restart intensity). Now each such request is a 4xx problem
and the bystanders never notice: they finish ``completed`` with every line of output.

The requests are raw bytes on a socket, so nothing on the client side can normalise
them: JSON ``\\udc80`` escapes, NUL, bytes that are not UTF-8 in the body and in headers.
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from tests.conftest import Server, sse_events, write_job

DEV = {"Authorization": "Bearer dev-token"}
RUNS = 3
AFTER = 200

#: Streams numbered lines until the gate file exists, then AFTER more lines, then exits 0.
STEADY = f"""#!/bin/bash
i=0
while [ ! -e "$ARG_GATE" ]; do echo "line $i"; i=$((i + 1)); sleep 0.01; done
for j in $(seq 1 {AFTER}); do echo "after $j"; done
"""


def raw_post(url: str, path: str, body: bytes, *headers: bytes) -> tuple[int, dict[str, str],
                                                                         bytes]:
    """``POST path`` with exactly these bytes; the status, headers and body read back."""
    address = urlparse(url)
    head = b"".join([
        f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\n".encode(),
        b"Authorization: Bearer dev-token\r\n" if not any(
            h.lower().startswith(b"authorization:") for h in headers) else b"",
        b"Content-Type: application/json\r\n",
        f"Content-Length: {len(body)}\r\nConnection: close\r\n".encode(),
        *(header + b"\r\n" for header in headers), b"\r\n"])
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(head + body)
        received = b""
        # Read the head, then exactly Content-Length bytes (Hypercorn may keep the
        # connection open after a ``Connection: close`` answer until the client closes).
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"the server closed the connection: {received!r}"
            received += chunk
        head_bytes, _, payload = received.partition(b"\r\n\r\n")
        status_line, *lines = head_bytes.decode("latin-1").split("\r\n")
        found = {}
        for line in lines:
            name, _, value = line.partition(":")
            found[name.strip().lower()] = value.strip()
        while len(payload) < int(found.get("content-length", "0")):
            chunk = sock.recv(65536)
            assert chunk, f"the server closed the connection: {received!r}"
            payload += chunk
    return int(status_line.split()[1]), found, payload


#: (request body, extra header lines, expected status, the argument the problem must name).
HOSTILE: list[tuple[bytes, tuple[bytes, ...], int, str | None]] = [
    (rb'{"job_id":"demo","args":{"name":"x\udc80y"}}', (), 422, "name"),
    (rb'{"job_id":"demo","args":{"name":"x\u0000y"}}', (), 422, "name"),
    (rb'{"job_id":"demo","args":{"name":"x","tags":["ok","\ud800"]}}', (), 422, "tags"),
    (rb'{"job_id":"demo","args":{"name":"x","n\udfff":"y"}}', (), 422, "n\\udfff"),
    (rb'{"job_id":"demo","args":{"name":"x","secret_token":"\udc80\u0000"}}', (), 422,
     "secret_token"),
    (rb'{"job_id":"de\udc80mo","args":{"name":"x"}}', (), 400, "job_id"),
    (b'{"job_id":"demo","args":{"name":"caf\xe9"}}', (), 400, None),  # not UTF-8
    (rb'{"job_id":"examples.python","args":{"count":18446744073709551616}}', (), 422, "count"),
    # Headers that are not UTF-8 (h11 lets obs-text through; the app must not).
    (rb'{"job_id":"demo","args":{"name":"x"}}', (b"Idempotency-Key: k\xe9y\xff",), 400, None),
    (rb'{"job_id":"demo","args":{"name":"x"}}', (b"Authorization: Bearer dev-t\xe9ken",), 401,
     None),
]


def test_bad_text_requests_leave_streaming_runs_untouched(server_factory: Any,
                                                          workspace: Path) -> None:
    write_job(workspace, "steady", """\
job: {id: steady}
argspec: {args: [{name: gate, type: string, required: true}]}
""", {"100_main.sh": STEADY})
    gate = workspace / "gate"
    server: Server = server_factory("--dev")
    url = server.url

    streams: dict[str, list[dict[str, Any]]] = {}
    streaming = {name: threading.Event() for name in range(RUNS)}
    failures: list[BaseException] = []

    def watch(index: int, run_id: str) -> None:
        events = streams[run_id]
        try:
            with httpx.stream("GET", f"{url}/runs/{run_id}/events", headers=DEV,
                              timeout=120) as response:
                assert response.status_code == 200, response.read()
                for event in sse_events(response.iter_lines()):
                    events.append(event)
                    if event["type"] == "step.log":
                        streaming[index].set()
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
            streaming[index].set()

    threads = []
    for index in range(RUNS):
        created = httpx.post(f"{url}/runs", json={"job_id": "steady",
                                                   "args": {"gate": str(gate)}},
                             headers=DEV, timeout=30)
        assert created.status_code == 201, (created.text, "".join(server.log)[-3000:])
        streams[created.json()["id"]] = []
        thread = threading.Thread(target=watch, args=(index, created.json()["id"]), daemon=True)
        thread.start()
        threads.append(thread)
    for event in streaming.values():
        assert event.wait(60), "a bystander run never streamed"
    assert not failures, failures

    for body, headers, status, arg in HOSTILE:
        got, response_headers, payload = raw_post(url, "/runs", body, *headers)
        assert got == status, (body, headers, got, payload)
        assert response_headers["content-type"] == "application/problem+json", payload
        problem = json.loads(payload)
        assert problem["status"] == status
        if arg is not None:
            assert problem["errors"][0]["arg"] == arg, problem
        # The problem itself is text: strict UTF-8 JSON, no lone surrogate decoded out of it.
        json.dumps(problem, ensure_ascii=False).encode()

    assert httpx.get(f"{url}/healthz", timeout=10).status_code in (200, 204)
    assert all(thread.is_alive() for thread in threads), "a bystander stream ended early"
    gate.touch()
    for thread in threads:
        thread.join(120)
        assert not thread.is_alive()
    assert not failures, failures

    for run_id, events in streams.items():
        assert events[-1]["type"] == "run.finish", events[-3:]
        assert events[-1]["data"]["status"] == "completed", events[-1]
        lines = [event["data"]["message"] for event in events if event["type"] == "step.log"]
        before = [line for line in lines if line.startswith("line ")]
        assert before == [f"line {i}" for i in range(len(before))] and before
        assert lines[len(before):] == [f"after {j}" for j in range(1, AFTER + 1)]
        seqs = [event["seq"] for event in events]
        assert seqs == sorted(set(seqs))
        run = httpx.get(f"{url}/runs/{run_id}", headers=DEV, timeout=10).json()
        assert run["status"] == "completed", run
    # No refused request left a run behind, and nothing crashed.
    listed = httpx.get(f"{url}/runs", headers=DEV, params={"per_page": 50}, timeout=10).json()
    runs = listed["runs"] if isinstance(listed, dict) else listed
    assert sorted(run["id"] for run in runs) == sorted(streams)
    assert server.process.poll() is None
    log = "".join(server.log)
    assert "Traceback" not in log and "crashed" not in log, log[-3000:]
