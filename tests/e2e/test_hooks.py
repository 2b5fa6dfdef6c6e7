"""Inbound webhooks end to end: a real `flwd :serve` on port 0, real HTTP clients and raw
sockets. A correct, a forged and a replayed GitHub-style delivery; Stripe's timestamp
window; bearer tokens with and without hooks:trigger; allow_ips; ?wait; hostile input;
what GET /hooks, GET /discovery and `flwd :jobs` say of declarations that are not served.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.conftest import Server, run_cli, scrape, sse_events, write_job

SECRET = "It's a Secret to Everybody"
STRIPE_SECRET = "whsec_stripe_test"
GITLAB_TOKEN = "glpat-hook-token"
BODY = json.dumps({"ref": "refs/heads/main", "pusher": {"name": "Avery"}}).encode()
HOOKS = """
aliases:
  - from: demo
    to: hello-demo
hooks:
  - name: github-push
    job: demo
    description: A push to the repository
    args:
      name: {body: /pusher/name}
      loud: {value: false}
    auth:
      hmac: {secret_file: hooks/github.secret}
  - name: stripe
    job: demo
    args: {name: {body: data.object.customer}}
    auth:
      hmac: {secret_env: FLWD_TEST_STRIPE, header: Stripe-Signature, format: stripe}
  - name: gitlab
    job: demo
    args: {name: {query: who}}
    auth:
      token: {secret_env: FLWD_TEST_GITLAB}
  - name: ci
    job: demo
    args: {name: {header: X-Who}}
    auth: {bearer: true}
  - name: lan-only
    job: demo
    args: {name: {value: lan}}
    auth: {allow_ips: [10.0.0.0/8]}
  - name: loopback
    job: demo
    args: {name: {value: local}}
    auth: {allow_ips: [127.0.0.1/32, "::1"]}
  - name: open
    job: demo
    args: {name: {value: open}}
    auth: none
  - name: broken
    job: demo
  - name: fail
    job: examples.fail
    auth: {bearer: true}
  - name: slow
    job: examples.long
    args: {seconds: {value: 3}}
    auth: {bearer: true}
"""
ENV = {"FLWD_TEST_STRIPE": STRIPE_SECRET, "FLWD_TEST_GITLAB": GITLAB_TOKEN}


@pytest.fixture
def hooks_workspace(workspace: Path) -> Path:
    (workspace / "scripts" / "flwd.yaml").write_text(HOOKS)
    secret = workspace / "hooks" / "github.secret"
    secret.parent.mkdir()
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    # A hook declared in a job's own config: the job is implied.
    write_job(workspace, "deploy", """interpreter: bash
argspec:
  args:
    - {name: env, type: string, enum: [staging, prod]}
hooks:
  - name: deploy
    args: {env: {query: env}}
    auth: {bearer: true}
""", {"100_main.sh": 'echo "deploying to ${env}"\n'})
    return workspace


@pytest.fixture
def token(hooks_workspace: Path, data_dir: Path) -> str:
    return mint(hooks_workspace, data_dir, "all", "*")


def mint(workspace: Path, data_dir: Path, name: str, *scopes: str) -> str:
    created = run_cli([":tokens", "create", "--name", name,
                       *(word for scope in scopes for word in ("--scope", scope))],
                      cwd=workspace, data_dir=data_dir)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def github(body: bytes = BODY, *, delivery: str | None, secret: str = SECRET,
           signature: str | None = None, **headers: str) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    out = {"Content-Type": "application/json", "X-GitHub-Event": "push",
           "X-Hub-Signature-256": signature or f"sha256={digest}", **headers}
    if delivery is not None:
        out["X-GitHub-Delivery"] = delivery
    return out


def post(server: Server, hook: str, body: bytes = BODY, headers: dict[str, str] | None = None,
         **params: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/hooks/{hook}", content=body, headers=headers or {},
                      params=params, timeout=60)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def finish(server: Server, run_id: str, token: str) -> dict[str, Any]:
    """The run once it has ended (its event stream ends with the run)."""
    with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", headers=bearer(token),
                      timeout=120) as response:
        assert response.status_code == 200
        types = [event["type"] for event in sse_events(response.iter_lines())]
    assert types[-1] == "run.finish"
    return httpx.get(f"{server.url}/runs/{run_id}", headers=bearer(token), timeout=30).json()


def runs_total(server: Server, token: str) -> int:
    response = httpx.get(f"{server.url}/runs", headers=bearer(token), timeout=30)
    return int(response.headers["X-Total-Count"])


def journal(server: Server, token: str, types: set[str], count: int) -> list[dict[str, Any]]:
    """The first ``count`` events of ``types`` of the global stream (replayed from the
    start, then live: they reach /events subscribers); a missing one fails on the
    read timeout instead of hanging."""
    found: list[dict[str, Any]] = []
    with httpx.stream("GET", f"{server.url}/events", params={"after": 0},
                      headers=bearer(token), timeout=httpx.Timeout(30, read=30)) as response:
        assert response.status_code == 200
        for event in sse_events(response.iter_lines()):
            if event["type"] in types:
                found.append(event)
                if len(found) == count:
                    break
    return found


def hook_series(server: Server) -> dict[tuple[str, str], float]:
    return {(dict(labels)["hook"], dict(labels)["outcome"]): value
            for (name, labels), value in scrape(server.url).items()
            if name == "flwd_hook_requests_total"}


def test_a_github_delivery_a_forgery_and_a_replay(server_factory, hooks_workspace: Path,
                                                  token: str) -> None:
    server = server_factory(**ENV)
    accepted = post(server, "github-push", headers=github(delivery="d-1"))
    assert accepted.status_code == 202, accepted.text
    document = accepted.json()
    run_id = document["run_id"]
    assert document["events_url"] == f"/runs/{run_id}/events"
    assert accepted.headers["Location"] == f"/runs/{run_id}"
    run = finish(server, run_id, token)
    assert run["status"] == "completed"
    assert run["result"]["resolved_args"]["name"] == "Avery"  # mapped from the body
    assert run["trigger"] == {"kind": "hook", "name": "github-push", "delivery": "d-1"}

    # A forgery of the right length (one hex digit changed), and no signature at all.
    good = github(delivery="d-2")["X-Hub-Signature-256"]
    forged = good[:-1] + ("0" if good[-1] != "0" else "1")
    for headers in (github(delivery="d-2", signature=forged),
                    {k: v for k, v in github(delivery="d-3").items()
                     if k != "X-Hub-Signature-256"},
                    github(delivery="d-4", secret="guessed")):
        refused = post(server, "github-push", headers=headers)
        assert refused.status_code == 401, refused.text
        problem = refused.json()
        assert problem["code"] == "hook.unauthorized"
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "X-Hub-Signature" not in problem["detail"] and "WWW-Authenticate" in refused.headers
    assert runs_total(server, token) == 1, "a forged delivery started nothing"

    # The same delivery again: refused, naming the run it started; still one run.
    replay = post(server, "github-push", headers=github(delivery="d-1"))
    assert replay.status_code == 409 and replay.json()["code"] == "hook.replay"
    assert replay.json()["run_id"] == run_id
    assert runs_total(server, token) == 1

    # Two identical new deliveries at once: one run.
    statuses: list[int] = []
    barrier = threading.Barrier(2)

    def race() -> None:
        barrier.wait(timeout=30)
        statuses.append(post(server, "github-push", headers=github(delivery="d-race"))
                        .status_code)

    racers = [threading.Thread(target=race) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=120)
    assert sorted(statuses) == [202, 409]
    assert runs_total(server, token) == 2

    series = hook_series(server)
    assert series[("github-push", "accepted")] == 2
    assert series[("github-push", "signature")] == 3
    assert series[("github-push", "replay")] == 2
    received, *rejected = journal(server, token, {"hook.received", "hook.rejected"}, 4)
    assert received["type"] == "hook.received" and received["run_id"] == ""
    assert received["data"]["run_id"] == run_id and received["data"]["delivery"] == "d-1"
    assert [event["data"]["reason"] for event in rejected] == ["signature"] * 3
    assert all(event["job_id"] == "demo" and event["run_id"] == "" for event in rejected)
    text = json.dumps([received, *rejected])
    assert "Avery" not in text and forged not in text and good[7:] not in text
    assert server.stop() == 0
    log = "".join(server.log)
    assert SECRET not in log and forged not in log and "Traceback" not in log


def _stripe(body: bytes, at: int) -> dict[str, str]:
    digest = hmac.new(STRIPE_SECRET.encode(), f"{at}.".encode() + body,
                      hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={at},v1={digest}", "Content-Type": "application/json"}


def test_stripe_signatures_outside_their_window_and_a_gitlab_token(
        server_factory, hooks_workspace: Path, token: str) -> None:
    server = server_factory(**ENV)
    body = json.dumps({"data": {"object": {"customer": "Cleo"}}}).encode()
    now = int(time.time())
    assert post(server, "stripe", body, _stripe(body, now)).status_code == 202
    for skew in (-600, 600):  # signed correctly, ten minutes away from now
        late = post(server, "stripe", body, _stripe(body, now + skew))
        assert late.status_code == 401 and late.json()["code"] == "hook.unauthorized"
    assert hook_series(server)[("stripe", "timestamp")] == 2
    [rejected] = journal(server, token, {"hook.rejected"}, 1)
    assert rejected["data"]["reason"] == "timestamp"
    assert "tolerance 300 s" in rejected["data"]["detail"]

    sent = post(server, "gitlab", b"{}", {"X-Gitlab-Token": GITLAB_TOKEN}, who="Dana")
    assert sent.status_code == 202
    assert finish(server, sent.json()["run_id"], token)["result"]["resolved_args"]["name"] \
        == "Dana"
    assert post(server, "gitlab", b"{}", {"X-Gitlab-Token": "guess"}).status_code == 401
    assert runs_total(server, token) == 2


def test_bearer_tokens_with_and_without_hooks_trigger_and_allow_ips(
        server_factory, hooks_workspace: Path, data_dir: Path, token: str) -> None:
    trigger = mint(hooks_workspace, data_dir, "trigger", "hooks:trigger")
    runner = mint(hooks_workspace, data_dir, "runner", "runs:write")
    server = server_factory(**ENV)
    missing = post(server, "ci", b"", {"X-Who": "Eve"})
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert post(server, "ci", b"", {**bearer("flwd_not-a-token"), "X-Who": "Eve"}).status_code \
        == 401
    denied = post(server, "ci", b"", {**bearer(runner), "X-Who": "Eve"})
    assert denied.status_code == 403 and denied.json()["missing_scopes"] == ["hooks:trigger"]
    for allowed in (trigger, token):  # a '*' token minted now has hooks:trigger
        started = post(server, "ci", b"", {**bearer(allowed), "X-Who": "Finn"})
        assert started.status_code == 202, started.text
        assert finish(server, started.json()["run_id"], token)["result"]["resolved_args"][
            "name"] == "Finn"
    # The job of a hook declared in its own config; the argspec judges the query.
    deploy = post(server, "deploy", b"", bearer(trigger), env="prod")
    assert deploy.status_code == 202
    invalid = post(server, "deploy", b"", bearer(trigger), env="moon")
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["arg"] == "env"

    # The peer is the socket's: a forwarded-for header is not believed.
    lan = post(server, "lan-only", b"", {"X-Forwarded-For": "10.1.2.3",
                                         "Forwarded": "for=10.1.2.3"})
    assert lan.status_code == 403 and lan.json()["code"] == "hook.forbidden"
    assert post(server, "loopback", b"").status_code == 202
    series = hook_series(server)
    assert series[("ci", "bearer")] == 2 and series[("ci", "scope")] == 1
    assert series[("lan-only", "ip")] == 1 and series[("deploy", "args")] == 1


def test_wait_for_the_outcome(server_factory, hooks_workspace: Path, token: str) -> None:
    server = server_factory(**ENV)
    done = post(server, "ci", b"", {**bearer(token), "X-Who": "Gil"}, wait=60)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed" and done.json()["exit_code"] == 0
    failed = post(server, "fail", b"", bearer(token), wait=60)
    assert failed.status_code == 200
    assert failed.json()["status"] == "failed" and failed.json()["exit_code"] == 3
    # A run of at least 3 s, waited for 1 s: the answer comes without its outcome.
    started = time.monotonic()
    slow = post(server, "slow", b"", bearer(token), wait=1)
    assert slow.status_code == 202 and slow.json()["status"] in ("queued", "running")
    assert "exit_code" not in slow.json() and time.monotonic() - started < 30
    assert finish(server, slow.json()["run_id"], token)["status"] == "completed"
    for bad in ("abc", "301", "-1", "nan"):
        refused = post(server, "ci", b"", {**bearer(token), "X-Who": "x"}, wait=bad)
        assert refused.status_code == 400 and "wait" in refused.json()["detail"]
    assert runs_total(server, token) == 3


def _raw(sock: socket.socket, request: bytes) -> bytes:
    """Send ``request`` (a body that stops short); the answer, headers and body (read up
    to its Content-Length)."""
    sock.sendall(request)
    answer = b""
    while b"\r\n\r\n" not in answer and (chunk := sock.recv(65536)):
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length and (chunk := sock.recv(65536)):
        body += chunk
    return head + b"\r\n\r\n" + body


def test_hostile_requests_are_clear_problems_and_harm_nothing(
        server_factory, hooks_workspace: Path, data_dir: Path, token: str) -> None:
    server = server_factory(**ENV)
    huge = b"x" * (2 << 20)
    assert post(server, "github-push", huge, github(huge, delivery="h-1")).status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"y" * 65536

    chunked = httpx.post(f"{server.url}/hooks/github-push", content=chunks(), timeout=60,
                         headers=github(delivery="h-2"))
    assert chunked.status_code == 413 and chunked.json()["code"] == "body.too.large"
    for body, words in ((b'{"pusher": ', "not valid JSON"), (b"\xff\xfe\x00", "not UTF-8"),
                        (b"[" * 50_000, "not valid JSON")):
        # Signed correctly, so they pass authentication and reach the parser.
        response = post(server, "github-push", body, github(body, delivery=None))
        assert response.status_code == 400 and words in response.json()["detail"], response.text
    # A body that never arrives: 408 once the hook's body timeout (10 s) is over.
    # The socket stays open until the server has stopped: Hypercorn 0.18 races its last
    # write of an answer against a client's close on the same connection (and logs the
    # BusyResourceError), whatever the route.
    parsed = urlparse(server.url)
    slow = socket.create_connection((parsed.hostname, parsed.port), timeout=60)
    started = time.monotonic()
    answer = _raw(slow, b"POST /hooks/github-push HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                        b'{"pusher": ')
    assert answer.startswith(b"HTTP/1.1 408") and b"body.timeout" in answer
    assert b"connection: close" in answer.lower()
    assert time.monotonic() - started < 55
    # Forged deliveries, each with a new delivery id: nothing is claimed or started, and
    # the journal keeps a bounded share of them (30 a minute, then a count).
    for number in range(120):
        assert post(server, "github-push",
                    headers=github(delivery=f"f-{number}", secret="wrong")).status_code == 401
    with sqlite3.connect(f"file:{data_dir / 'flwd.db'}?mode=ro", uri=True) as db:
        claimed = db.execute("SELECT COUNT(*) FROM hook_deliveries").fetchone()[0]
        rejected = db.execute("SELECT COUNT(*) FROM events WHERE type = 'hook.rejected'"
                              ).fetchone()[0]
    db.close()
    assert claimed == 0
    assert rejected <= 40, "a flood of forgeries is not journaled one by one"
    assert hook_series(server)[("github-push", "signature")] == 120

    assert post(server, "nope", b"{}").json()["code"] == "hook.not.found"
    assert hook_series(server)[("(unknown)", "unknown")] == 1
    wrong_method = httpx.get(f"{server.url}/hooks/github-push", timeout=30)
    assert wrong_method.status_code == 405 and "POST" in wrong_method.headers["Allow"]
    assert httpx.post(f"{server.url}/hooks/a%2Fb", timeout=30).status_code == 404
    assert httpx.put(f"{server.url}/hooks/github-push", timeout=30).status_code == 405
    # After all of it, a real delivery is served as the first one was.
    assert post(server, "github-push", headers=github(delivery="after")).status_code == 202
    assert runs_total(server, token) == 1
    stopping = time.monotonic()
    assert server.stop() == 0
    slow.close()
    assert time.monotonic() - stopping < 30
    log = "".join(server.log)
    where = max(log.find("Traceback"), log.find('"status": 500'))
    assert where < 0, log[max(0, where - 2000):where + 4000]


def test_what_is_served_listed_and_refused(server_factory, hooks_workspace: Path,
                                           data_dir: Path, token: str) -> None:
    server = server_factory(**ENV)
    listed = httpx.get(f"{server.url}/hooks", headers=bearer(token), timeout=30)
    assert listed.status_code == 200
    document = listed.json()
    names = [hook["name"] for hook in document["hooks"]]
    assert names == sorted(["ci", "deploy", "fail", "github-push", "gitlab", "lan-only",
                            "loopback", "slow", "stripe"])
    [push] = [hook for hook in document["hooks"] if hook["name"] == "github-push"]
    assert push == {
        "name": "github-push", "job": "demo", "url": "/hooks/github-push",
        "description": "A push to the repository", "auth": ["hmac"],
        "hmac": {"header": "X-Hub-Signature-256", "algorithm": "sha256",
                 "format": "sha256={hex}", "signed_payload": "{body}"},
        "delivery_headers": ["X-GitHub-Delivery", "X-Gitlab-Event-UUID", "Webhook-Id"],
        "replay_window_seconds": 86400.0,
        "args": {"name": {"body": "/pusher/name"}, "loud": {"value": False}},
        "declared_in": "scripts/flwd.yaml"}
    text = listed.text
    assert "github.secret" not in text and SECRET not in text and "FLWD_TEST_STRIPE" not in text
    errors = {error["code"]: error["error"] for error in document["errors"]}
    assert "hooks[6] (open): auth: none is served by 'flwd :serve --dev' only" in \
        errors["hook.auth.none"]
    assert errors["hook.invalid"].startswith("hooks[7] (broken): auth: required")
    assert post(server, "open", b"").status_code == 404  # not a --dev server
    assert httpx.get(f"{server.url}/hooks", timeout=30).status_code == 401
    discovery = httpx.get(f"{server.url}/discovery", headers=bearer(token), timeout=30).json()
    assert {"hook.auth.none", "hook.invalid"} <= {e.get("code") for e in discovery["errors"]}
    jobs = httpx.get(f"{server.url}/jobs", headers=bearer(token), timeout=30)
    assert int(jobs.headers["X-Flwd-Discovery-Errors"]) >= 2
    assert server.stop() == 0
    # Said in the log before the first request.
    log = "".join(server.log)
    assert "hooks[7] (broken): auth: required" in log.split('"serving"')[0]

    # flwd :jobs says what is wrong (not being a server, auth: none is only a warning).
    listing = run_cli([":jobs"], cwd=hooks_workspace, data_dir=data_dir, **ENV)
    assert listing.returncode == 0
    assert "hooks[7] (broken): auth: required" in listing.stderr
    assert "auth: none is served by 'flwd :serve --dev' only" in listing.stderr

    dev = server_factory("--dev", **ENV)
    assert post(dev, "open", b"").status_code == 202
