"""Notifications end to end against a real ``flwd :serve`` (issue 16 item 3): a failing job
notifies an HTTP receiver on a real socket with a valid signature, is retried when the
receiver first answers 500, and a success after failures sends ``recovery``; the run's
status and streams are untouched; a hanging sink delays no run and is abandoned (and
journaled) when the server stops; a command sink gets the notification on its stdin."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from flwd.notify import verify_signature
from tests.conftest import Server, scrape, sse_events, write_job

DEV = {"Authorization": "Bearer dev-token"}
SECRET = "whsec-0f9a3c-notify-test"
RUN_SECRET = "tok-run-secret-4711"
AUTH = "Bearer rcv-6d1f0a-receiver-token"


class Receiver:
    """An HTTP server on 127.0.0.1:0 (its own thread) that keeps every POST and answers
    with the next status of its script (the last one repeats)."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses) or [200]
        self.requests: list[dict[str, Any]] = []
        self.condition = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.condition:
                    status = (receiver.statuses.pop(0) if len(receiver.statuses) > 1
                              else receiver.statuses[0])
                    receiver.requests.append({"path": self.path, "body": body,
                                              "headers": dict(self.headers.items()),
                                              "at": time.time(), "status": status})
                    receiver.condition.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/flwd"

    def wait(self, count: int, timeout: float = 60) -> list[dict[str, Any]]:
        with self.condition:
            assert self.condition.wait_for(lambda: len(self.requests) >= count, timeout), (
                f"the receiver got {len(self.requests)} requests, not {count}")
            return list(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver(500, 200)
    yield receiver
    receiver.close()


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Poll ``condition`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        select.select([], [], [], 0.05)
    return result


def start(server: Server, job_id: str, **args: object) -> dict[str, Any]:
    response = httpx.post(f"{server.url}/runs", json={"job_id": job_id, "args": args},
                          headers=DEV, timeout=30)
    assert response.status_code == 201, response.text
    return dict(response.json())


def finished(server: Server, run_id: str) -> dict[str, Any]:
    def run() -> dict[str, Any] | None:
        answer = httpx.get(f"{server.url}/runs/{run_id}", headers=DEV, timeout=30).json()
        return answer if answer["status"] not in ("queued", "running") else None

    return dict(wait_until(run, f"run {run_id} to finish"))


def deliveries(server: Server, run_id: str, count: int) -> list[dict[str, Any]]:
    def listed() -> list[dict[str, Any]] | None:
        answer = httpx.get(f"{server.url}/runs/{run_id}/notifications", headers=DEV, timeout=30)
        assert answer.status_code == 200, answer.text
        found = answer.json()["deliveries"]
        return found if len(found) >= count else None

    return list(wait_until(listed, f"{count} deliveries of run {run_id}"))


ALERT_JOB = """\
argspec:
  args:
    - {{name: outcome, type: string, enum: [fail, pass], default: fail}}
    - {{name: api_key, type: string, format: secret, required: false}}
notify:
  - on: [failure, recovery]
    webhook:
      url: "{url}"
      secret_file: "{secret}"
      backoff: 200ms
      headers: {{X-Team: ops}}
      headers_env: {{Authorization: UITEST_RECEIVER_AUTH}}
"""


def test_a_failing_job_notifies_a_signed_webhook_retried_after_a_500_then_recovers(
        workspace: Path, data_dir: Path, tmp_path: Path, server_factory: Any,
        receiver: Receiver) -> None:
    secret = tmp_path / "hook.secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    write_job(workspace, "alert", ALERT_JOB.format(url=receiver.url, secret=secret),
              {"100_main.sh": 'echo "outcome $ARG_OUTCOME"\n[ "$ARG_OUTCOME" = pass ]\n'})
    server: Server = server_factory("--dev", UITEST_RECEIVER_AUTH=AUTH)

    failed = start(server, "alert", outcome="fail", api_key=RUN_SECRET)
    first, retry = receiver.wait(2)
    assert (first["status"], retry["status"]) == (500, 200)
    # One notification, sent twice: same body, same delivery id, each signed afresh.
    assert first["body"] == retry["body"] and first["path"] == "/hooks/flwd"
    for request in (first, retry):
        headers = request["headers"]
        assert verify_signature(SECRET.encode(), headers["X-Flwd-Timestamp"], request["body"],
                                headers["X-Flwd-Signature"], now=request["at"])
        assert not verify_signature(b"another secret", headers["X-Flwd-Timestamp"],
                                    request["body"], headers["X-Flwd-Signature"],
                                    now=request["at"])
        assert headers["X-Flwd-Event"] == "failure" and headers["X-Team"] == "ops"
        assert headers["Authorization"] == AUTH  # headers_env: read from flwd's environment
        assert headers["Content-Type"] == "application/json"
    assert first["headers"]["X-Flwd-Delivery"] == retry["headers"]["X-Flwd-Delivery"]
    note = json.loads(first["body"])
    assert note["event"] == "failure" and note["delivery"] == first["headers"]["X-Flwd-Delivery"]
    assert note["run"]["id"] == failed["id"] and note["run"]["status"] == "failed"
    assert note["run"]["exit_code"] == 1 and note["run"]["job_id"] == "alert"
    assert note["run"]["args"] == {"outcome": "fail", "api_key": "[secret]"}
    assert note["run"]["url"] == f"{server.url}/#/runs/{failed['id']}"
    assert note["run"]["api_url"] == f"{server.url}/runs/{failed['id']}"

    retrying, delivered = deliveries(server, failed["id"], 2)
    assert (retrying["attempt"], retrying["outcome"], retrying["status"]) == (1, "retrying", 500)
    assert 0.1 <= retrying["next_retry_in"] <= 0.2 and retrying["error"] == "HTTP 500 " \
        "Internal Server Error"
    assert (delivered["attempt"], delivered["outcome"], delivered["status"]) == (
        2, "delivered", 200)
    assert {retrying["sink"], delivered["sink"]} == {"notify[0]"}
    assert delivered["sink_kind"] == "webhook" and delivered["event"] == "failure"
    run = finished(server, failed["id"])
    assert (run["status"], run["exit_code"]) == ("failed", 1), "a sink never changes a run"

    # A success after failures is a recovery; the next success sends nothing (the next
    # request the receiver gets is the failure after it).
    recovered = start(server, "alert", outcome="pass")
    assert json.loads(receiver.wait(3)[2]["body"])["event"] == "recovery"
    assert json.loads(receiver.requests[2]["body"])["run"]["id"] == recovered["id"]
    assert deliveries(server, recovered["id"], 1)[0]["outcome"] == "delivered"
    quiet = start(server, "alert", outcome="pass")
    assert finished(server, quiet["id"])["status"] == "completed"
    again = start(server, "alert", outcome="fail")
    fourth = json.loads(receiver.wait(4)[3]["body"])
    assert (fourth["event"], fourth["run"]["id"]) == ("failure", again["id"])
    deliveries(server, again["id"], 1)
    assert httpx.get(f"{server.url}/runs/{quiet['id']}/notifications", headers=DEV,
                     timeout=30).json() == {"run_id": quiet["id"], "deliveries": []}

    counted = scrape(server.url)
    assert counted[("flwd_notify_deliveries_total",
                    frozenset({("sink_kind", "webhook"), ("outcome", "retrying")}))] == 1
    assert counted[("flwd_notify_deliveries_total",
                    frozenset({("sink_kind", "webhook"), ("outcome", "delivered")}))] == 3

    _streams_end_at_run_finish(server, failed["id"])
    server.stop()
    # Neither the webhook's secret nor the run's secret argument is kept anywhere.
    for path in data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SECRET.encode() not in data and RUN_SECRET.encode() not in data, path
            assert AUTH.encode() not in data, path
    assert SECRET not in "".join(server.log) and RUN_SECRET not in "".join(server.log)
    assert AUTH not in "".join(server.log)


def _streams_end_at_run_finish(server: Server, run_id: str) -> None:
    """The run's deliveries were journaled after its run.finish: its streams still end
    there, and a client that saw run.finish is told the stream is over (204)."""
    ndjson = httpx.get(f"{server.url}/runs/{run_id}/events.ndjson", headers=DEV, timeout=30)
    events = [json.loads(line) for line in ndjson.text.splitlines()]
    assert events[-1]["type"] == "run.finish"
    assert "notify.delivery" not in [event["type"] for event in events]
    with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", headers=DEV,
                      timeout=30) as response:
        live = list(sse_events(response.iter_lines()))
    assert live[-1]["type"] == "run.finish" and live[-1]["seq"] == events[-1]["seq"]
    resumed = httpx.get(f"{server.url}/runs/{run_id}/events", timeout=30,
                        headers={**DEV, "Last-Event-ID": str(events[-1]["seq"])})
    assert resumed.status_code == 204
    text = httpx.get(f"{server.url}/runs/{run_id}/log.txt", headers=DEV, timeout=30).text
    assert text == "outcome fail\n"


HANGING_JOB = """\
notify:
  - name: pager
    on: [failure]
    webhook: {{url: "http://127.0.0.1:{port}/never", timeout: 10m}}
  - on: [failure]
    command: [python3, -c, "import sys; open(sys.argv[1], 'wb').write(sys.stdin.buffer.read())",
              "{out}"]
"""


def test_a_hanging_sink_delays_no_run_and_is_abandoned_when_the_server_stops(
        workspace: Path, data_dir: Path, tmp_path: Path, server_factory: Any) -> None:
    # A receiver that takes the connection and never answers.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    out = tmp_path / "stdin.json"
    write_job(workspace, "hangs", HANGING_JOB.format(port=silent.getsockname()[1], out=out),
              {"100_main.sh": "exit 4\n"})
    server: Server = server_factory("--dev")
    try:
        started = time.monotonic()
        first = start(server, "hangs")
        second = start(server, "hangs")
        for run in (first, second):
            assert finished(server, run["id"])["status"] == "failed"
        # Far below the sink's timeout (10 minutes): no run waited for it.
        assert time.monotonic() - started < 120
        # The other sink delivered meanwhile; the command read the notification on stdin.
        wait_until(lambda: out.exists() and out.stat().st_size, "the command's output")
        note = json.loads(wait_until(lambda: _json_or_none(out), "the whole notification"))
        assert note["event"] == "failure" and note["run"]["job_id"] == "hangs"
        assert note["run"]["exit_code"] == 4
        for run in (first, second):
            [command] = deliveries(server, run["id"], 1)
            assert (command["sink"], command["sink_kind"], command["outcome"]) == (
                "notify[1]", "command", "delivered")
        stopping = time.monotonic()
        assert server.stop() == 0
        # Pending deliveries get 10 s (the drain), then are abandoned: bounded.
        assert time.monotonic() - stopping < 60
    finally:
        silent.close()
    restarted: Server = server_factory("--dev")
    for run in (first, second):
        by_sink = {d["sink"]: d for d in deliveries(restarted, run["id"], 2)}
        assert by_sink["pager"]["outcome"] == "abandoned"
        assert by_sink["pager"]["error"] == "flwd stopped: attempt 1 did not finish"


def _json_or_none(path: Path) -> str | None:
    text = path.read_text()
    try:
        json.loads(text)
    except ValueError:
        return None
    return text
