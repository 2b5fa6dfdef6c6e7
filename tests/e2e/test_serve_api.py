"""Serve mode end to end: a real `flwd :serve` (Hypercorn on port 0) and real HTTP clients."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from tests.conftest import processes_under, run_cli, sse_events, write_job

DEV = {"Authorization": "Bearer dev-token"}


def stream(url: str, run_id: str, **headers: str) -> list[dict]:
    with httpx.stream("GET", f"{url}/runs/{run_id}/events", headers={**DEV, **headers},
                      timeout=60) as response:
        assert response.status_code == 200
        return list(sse_events(response.iter_lines()))


def start(url: str, job_id: str, **args: object) -> dict:
    response = httpx.post(f"{url}/runs", json={"job_id": job_id, "args": args}, headers=DEV)
    assert response.status_code == 201, response.text
    return response.json()


def test_curl_quick_start_against_dev_server(dev_server) -> None:
    """The README's style of curl calls, verbatim, with `Bearer dev-token`."""
    def curl(*args: str) -> str:
        return subprocess.run(["curl", "-s", "--fail-with-body", *args], capture_output=True,
                              text=True, check=True, timeout=60).stdout

    jobs = json.loads(curl(f"{dev_server.url}/jobs", "-H", "Authorization: Bearer dev-token"))
    assert "demo" in [job["id"] for job in jobs]
    plan = json.loads(curl("-X", "POST", f"{dev_server.url}/plans",
                           "-H", "Authorization: Bearer dev-token",
                           "-H", "Content-Type: application/json",
                           "-d", '{"job_id":"demo","args":{"name":"Alice"}}'))
    assert plan["resolved_args"]["name"] == "Alice"
    run = json.loads(curl("-X", "POST", f"{dev_server.url}/runs",
                          "-H", "Content-Type: application/json",
                          "-H", "Authorization: Bearer dev-token",
                          "-d", '{"job_id":"demo","args":{"name":"Alice"}}'))
    assert run["status"] == "queued"
    events = curl("-N", f"{dev_server.url}/runs/{run['id']}/events",
                  "-H", "Authorization: Bearer dev-token")
    assert events.startswith("retry: 2000\n:connected\n\n")
    assert "event: run.finish" in events and "demo: Hello, Alice!" in events


def test_local_and_remote_runs_emit_the_same_sequence(workspace: Path, data_dir: Path,
                                                      dev_server) -> None:
    local = run_cli(["demo", "--name", "alice", "--tags", "x", "--json"], cwd=workspace,
                    data_dir=data_dir)
    local_events = [json.loads(line) for line in local.stdout.splitlines()]
    run = start(dev_server.url, "demo", name="alice", tags=["x"])
    remote_events = stream(dev_server.url, run["id"])

    def shape(events: list[dict]) -> list[tuple]:
        return [(e["type"], e["data"].get("step"), e["data"].get("message"),
                 e["data"].get("status")) for e in events]

    assert shape(local_events) == shape(remote_events)
    assert set(remote_events[0]) == set(local_events[0]) == {"seq", "run_id", "job_id", "type",
                                                             "ts", "data"}


def test_cancel_from_automation_kills_the_tree(dev_server, workspace: Path) -> None:
    run = start(dev_server.url, "examples.long", ignore_term=True)
    seen: list[dict] = []
    with httpx.stream("GET", f"{dev_server.url}/runs/{run['id']}/events", headers=DEV,
                      timeout=60) as response:
        for event in sse_events(response.iter_lines()):
            seen.append(event)
            if str(event["data"].get("message", "")).startswith("long: grandchild"):
                cancel = httpx.post(f"{dev_server.url}/runs/{run['id']}:cancel", headers=DEV)
                assert cancel.status_code == 202
    types = [e["type"] for e in seen]
    assert "run.canceled" in types and types[-1] == "run.finish"
    assert seen[-1]["data"]["status"] == "canceled"
    assert not processes_under(f"FLWD_RUN_ID={run['id']}")
    final = httpx.get(f"{dev_server.url}/runs/{run['id']}", headers=DEV).json()
    assert final["status"] == "canceled"
    again = httpx.post(f"{dev_server.url}/runs/{run['id']}:cancel", headers=DEV)
    assert again.status_code == 200 and again.json()["status"] == "canceled"
    assert httpx.post(f"{dev_server.url}/runs/run-unknown:cancel",
                      headers=DEV).status_code == 404


def test_reconnect_with_last_event_id_sees_every_event_once(dev_server, workspace: Path) -> None:
    write_job(workspace, "counted", "interpreter: bash\nargspec: {args: [{name: gate, type: string}]}\n",
              {"100_count.sh": 'for i in 1 2 3; do echo "early $i"; done\n'
                               'read -r _ < "$gate"\nfor i in 1 2 3; do echo "late $i"; done\n'})
    import os

    gate = workspace / "gate.fifo"
    os.mkfifo(gate)
    run = start(dev_server.url, "counted", gate=str(gate))
    first: list[dict] = []
    with httpx.stream("GET", f"{dev_server.url}/runs/{run['id']}/events", headers=DEV,
                      timeout=60) as response:
        for event in sse_events(response.iter_lines()):
            first.append(event)
            if event["data"].get("message") == "early 2":
                break  # the client drops mid-run
    with open(gate, "w") as f:
        f.write("go\n")
    rest = stream(dev_server.url, run["id"], **{"Last-Event-ID": str(first[-1]["seq"])})
    everything = first + rest
    seqs = [e["seq"] for e in everything]
    assert seqs == sorted(set(seqs)), "each event exactly once, in order"
    messages = [e["data"]["message"] for e in everything if e["type"] == "step.log"]
    assert messages == ["early 1", "early 2", "early 3", "late 1", "late 2", "late 3"]
    assert everything[-1]["type"] == "run.finish"
    # Reconnecting after the end gets 204, which stops an EventSource.
    ended = httpx.get(f"{dev_server.url}/runs/{run['id']}/events", headers={
        **DEV, "Last-Event-ID": str(everything[-1]["seq"])})
    assert ended.status_code == 204
    bad = httpx.get(f"{dev_server.url}/runs/{run['id']}/events",
                    headers={**DEV, "Last-Event-ID": "abc"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid-cursor"


def test_ndjson_export_and_global_stream(dev_server) -> None:
    run = start(dev_server.url, "examples.python", count=3)
    events = stream(dev_server.url, run["id"])
    export = httpx.get(f"{dev_server.url}/runs/{run['id']}/events.ndjson", headers=DEV)
    assert export.status_code == 200
    assert [json.loads(line) for line in export.text.splitlines()] == events
    # The global stream replays everything after a cursor, across runs.
    with httpx.stream("GET", f"{dev_server.url}/events", headers={**DEV, "Last-Event-ID": "0"},
                      timeout=30) as response:
        for event in sse_events(response.iter_lines()):
            if event["seq"] == events[-1]["seq"]:
                break
        else:
            pytest.fail("the global stream ended early")


def test_stalled_client_slows_nothing_and_does_not_block_shutdown(server_factory,
                                                                   workspace: Path) -> None:
    write_job(workspace, "chatty", "interpreter: bash\n",
              {"100_chatty.sh": 'for i in $(seq 1 100000); do echo "line $i padding padding"; done\n'})
    server = server_factory("--dev", FLWD_TCP_USER_TIMEOUT_MS="1500")
    run = start(server.url, "chatty")
    host, port = urlparse(server.url).hostname, urlparse(server.url).port
    stalled = socket.create_connection((host, port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(f"GET /runs/{run['id']}/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
                    "Authorization: Bearer dev-token\r\n\r\n".encode())
    # The stalled reader never reads; another client still gets the whole run.
    events = stream(server.url, run["id"])
    assert events[-1]["data"]["status"] == "completed"
    assert sum(1 for e in events if e["type"] == "step.log") == 100000
    began = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - began < 15, "shutdown must not hang on a stalled client"
    stalled.close()


def test_restart_marks_unfinished_runs_interrupted(server_factory) -> None:
    first = server_factory("--dev")
    run = start(first.url, "examples.long")
    with httpx.stream("GET", f"{first.url}/runs/{run['id']}/events", headers=DEV,
                      timeout=60) as response:
        for event in sse_events(response.iter_lines()):
            if str(event["data"].get("message", "")).startswith("long: grandchild"):
                break
    first.stop(9)  # SIGKILL: no chance to clean up
    second = server_factory("--dev")
    runs = httpx.get(f"{second.url}/runs", headers=DEV).json()
    assert [(r["id"], r["status"]) for r in runs] == [(run["id"], "interrupted")]
    assert not processes_under(f"FLWD_RUN_ID={run['id']}")
    events = stream(second.url, run["id"])
    assert events[0]["type"] == "run.start"
    assert events[-1]["type"] == "run.finish" and events[-1]["data"]["status"] == "interrupted"


def test_problems_for_bad_input(dev_server) -> None:
    url = dev_server.url

    def problem(response: httpx.Response, status: int, code: str) -> dict:
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert body["status"] == status and body["code"] == code
        assert {"type", "title", "detail", "instance"} <= set(body)
        return body

    problem(httpx.post(f"{url}/runs", content=b"{not json", headers={
        **DEV, "Content-Type": "application/json"}), 400, "invalid-request-body")
    unknown_field = problem(httpx.post(f"{url}/runs", json={"job_id": "demo", "bogus": 1},
                                       headers=DEV), 400, "invalid-request-body")
    assert unknown_field["errors"][0]["arg"] == "bogus"
    problem(httpx.post(f"{url}/runs", json={"args": {}}, headers=DEV), 400,
            "invalid-request-body")
    problem(httpx.post(f"{url}/runs", json={"job_id": "nope"}, headers=DEV), 404,
            "job.not.found")
    invalid = problem(httpx.post(f"{url}/runs", json={"job_id": "demo",
                                                      "args": {"name": 5, "extra": True}},
                                 headers=DEV), 422, "E_ARGS")
    assert {e["arg"] for e in invalid["errors"]} == {"name", "extra"}
    problem(httpx.post(f"{url}/runs", content=b"x" * (2 << 20), headers={
        **DEV, "Content-Type": "application/json"}), 413, "body.too.large")
    problem(httpx.get(f"{url}/nope", headers=DEV), 404, "route.not.found")
    problem(httpx.delete(f"{url}/runs", headers=DEV), 405, "method.not.allowed")
    problem(httpx.get(f"{url}/jobs/..%2F..%2Fetc%2Fpasswd", headers=DEV), 404, "job.not.found")
    problem(httpx.get(f"{url}/runs?per_page=500", headers=DEV), 400, "invalid-pagination")
    problem(httpx.post(f"{url}/runs", json={"job_id": "demo", "args": {"name": "x"},
                                            "requested_security_profile": "lax"},
                       headers=DEV), 422, "E_POLICY")
    problem(httpx.post(f"{url}/runs", content=b"<xml/>", headers={
        **DEV, "Content-Type": "text/xml"}), 415, "unsupported-media-type")


def test_idempotent_post_runs(dev_server) -> None:
    body = {"job_id": "demo", "args": {"name": "same"}}
    headers = {**DEV, "Idempotency-Key": "deploy-2026-11-24-0001"}
    first = httpx.post(f"{dev_server.url}/runs", json=body, headers=headers)
    second = httpx.post(f"{dev_server.url}/runs", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["Idempotent-Replay"] == "true"
    conflict = httpx.post(f"{dev_server.url}/runs", json={**body, "args": {"name": "other"}},
                          headers=headers)
    assert conflict.status_code == 409 and conflict.json()["code"] == "idempotency-key-conflict"
    assert len(httpx.get(f"{dev_server.url}/runs", headers=DEV).json()) == 1


def test_runs_listing_filters_and_pages(dev_server) -> None:
    for name in ("a", "b", "c"):
        stream(dev_server.url, start(dev_server.url, "demo", name=name)["id"])
    stream(dev_server.url, start(dev_server.url, "examples.fail")["id"])
    everything = httpx.get(f"{dev_server.url}/runs", headers=DEV)
    assert everything.headers["X-Total-Count"] == "4"
    failed = httpx.get(f"{dev_server.url}/runs?status=failed", headers=DEV).json()
    assert [r["job_id"] for r in failed] == ["examples.fail"]
    page2 = httpx.get(f"{dev_server.url}/runs?job_id=demo&per_page=2&page=2", headers=DEV).json()
    assert len(page2) == 1 and page2[0]["result"]["resolved_args"]["name"] == "a"


def test_metrics_are_open_on_loopback_and_can_be_disabled(server_factory) -> None:
    server = server_factory("--dev")
    stream(server.url, start(server.url, "demo", name="m")["id"])
    text = httpx.get(f"{server.url}/metrics").text
    for name in ("flwd_build_info", 'flwd_security_profile{profile="secure"} 1.0',
                 'flwd_runs_total{status="completed"} 1.0', "flwd_http_requests_total",
                 "flwd_http_request_duration_seconds", "flwd_policy_denials_total",
                 "flwd_container_run_seconds", "flwd_container_pull_seconds",
                 "flwd_sse_active_streams", "flwd_journal_events_total",
                 "flwd_run_duration_seconds"):
        assert name in text, name
    server.stop()  # one server per data dir
    quiet = server_factory("--dev", "--metrics=false")
    assert httpx.get(f"{quiet.url}/metrics").status_code == 404


def test_dev_is_refused_on_non_loopback_and_runtime_preflight(workspace: Path,
                                                             data_dir: Path) -> None:
    dev = run_cli([":serve", "--bind", "0.0.0.0:0", "--dev", "--no-containers"], cwd=workspace,
                  data_dir=data_dir)
    assert dev.returncode == 2 and "--dev is refused" in dev.stderr
    no_runtime = run_cli([":serve", "--bind", "127.0.0.1:0"], cwd=workspace, data_dir=data_dir,
                         PATH="/nonexistent")
    assert no_runtime.returncode == 2
    assert "no container runtime found" in no_runtime.stderr


# trio-websocket 0.12.2 leaves its TCP socket to the garbage collector after a
# server-initiated close (a ResourceWarning in the client, not in flwd).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_websocket_streams_and_cancels(dev_server) -> None:
    import trio
    from trio_websocket import open_websocket_url

    run = start(dev_server.url, "examples.long")
    ws_url = dev_server.url.replace("http://", "ws://") + f"/runs/{run['id']}/ws"

    async def main() -> list[dict]:
        received: list[dict] = []
        async with open_websocket_url(ws_url, extra_headers=[("Authorization",
                                                              "Bearer dev-token")]) as ws:
            while True:
                try:
                    event = json.loads(await ws.get_message())
                except Exception:  # the server closes the socket after run.finish
                    break
                received.append(event)
                if str(event["data"].get("message", "")).startswith("long: leader"):
                    await ws.send_message(json.dumps({"type": "cancel"}))
            await ws.aclose()
        return received

    received = trio.run(main)
    assert received[-1]["type"] == "run.finish"
    assert received[-1]["data"]["status"] == "canceled"
    assert not processes_under(f"FLWD_RUN_ID={run['id']}")


def test_openapi_document_is_served_and_kept_in_docs(dev_server) -> None:
    served = httpx.get(f"{dev_server.url}/openapi.json").json()
    assert served["openapi"].startswith("3.1")
    kept = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text())
    assert served == kept, "regenerate: python -m flwd.http._openapi > docs/openapi.json"


def test_an_unread_body_never_stalls_the_next_request_on_the_connection(dev_server) -> None:
    """Regression: a request refused before its body was read (401, 404, 405) left the
    body on a kept-alive connection and the next request there hung until timeout."""
    with httpx.Client(base_url=dev_server.url, timeout=10) as client:
        for method, path, body in [("POST", "/runs", b'{"job_id": "demo"}' * 2000),
                                   ("TRACE", "/nowhere", b"abc"),
                                   ("POST", "/runs/run-x:cancel", b"{}")]:
            refused = client.request(method, path, content=body,
                                     headers={"Content-Type": "application/json",
                                              "Authorization": "Bearer wrong"})
            assert refused.status_code in (401, 404, 405)
            assert refused.headers["Connection"] == "close"
            after = client.get("/healthz")
            assert after.status_code == 204


def test_no_content_answers_carry_no_content_type(server_factory, tmp_path: Path) -> None:
    """Regression (issue 12 item 13): every 204 carried 'Content-Type: text/html; charset=utf-8'
    (and a Content-Length, which RFC 9110 forbids on a 204)."""
    extra = tmp_path / "extra"
    write_job(extra, "hello", "job: {id: hello}\n", {"100_hi.sh": "#!/bin/sh\necho hi\n"})
    server = server_factory("--dev", "--allow-path", str(extra))
    run = start(server.url, "demo", name="nc")
    last = stream(server.url, run["id"])[-1]["seq"]
    added = httpx.post(f"{server.url}/sources", headers=DEV, timeout=60,
                       json={"type": "local", "name": "extra", "ref": str(extra / "scripts")})
    assert added.status_code == 201, added.text
    answers = [
        httpx.get(f"{server.url}/healthz"),
        httpx.get(f"{server.url}/runs/{run['id']}/events",
                  headers={**DEV, "Last-Event-ID": str(last)}),
        httpx.delete(f"{server.url}/sources/extra", headers=DEV, timeout=60),
    ]
    for answer in answers:
        assert answer.status_code == 204, (answer.request.url, answer.text)
        assert "content-type" not in answer.headers, (answer.request.url, answer.headers)
        assert "content-length" not in answer.headers, (answer.request.url, answer.headers)
