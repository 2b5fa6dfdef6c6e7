"""Browser sessions against a real server: POST|GET|DELETE /session, the cookie, CSRF,
expiry, the cap per token, a restart, and revocation with the real `flwd :tokens revoke`
ending the session and every stream it (or a bearer token) opened.

HTTP-level: raw requests carry the headers a browser would send (Cookie, Origin,
Sec-Fetch-Site, X-CSRF-Token); the browser-level tests live under tests/ui/.
"""

from __future__ import annotations

import json
import re
import select
import socket
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.conftest import Server, run_cli

READ = ("jobs:read", "runs:read", "events:read")
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")


def mint(workspace: Path, data_dir: Path, name: str, *scopes: str, flags: tuple[str, ...] = ()
         ) -> str:
    created = run_cli([":tokens", "create", "--name", name,
                       *(f"--scope={scope}" for scope in scopes), *flags],
                      cwd=workspace, data_dir=data_dir)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def revoke(workspace: Path, data_dir: Path, name: str) -> None:
    revoked = run_cli([":tokens", "revoke", name], cwd=workspace, data_dir=data_dir)
    assert revoked.returncode == 0, revoked.stderr


def login(url: str, token: str, **headers: str) -> tuple[str, dict[str, Any], httpx.Response]:
    """(session id, document, response) of a login that must succeed."""
    answer = httpx.post(f"{url}/session", json={"token": token}, headers=headers, timeout=30)
    assert answer.status_code == 201, answer.text
    cookie = answer.headers["set-cookie"]
    found = re.match(r"flwd_session=([^;]*);", cookie)
    assert found is not None, cookie
    return found.group(1), answer.json(), answer


def jar(session_id: str) -> dict[str, str]:
    return {"Cookie": f"flwd_session={session_id}"}


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        select.select([], [], [], 0.05)


def session_rows(data_dir: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(data_dir / "flwd.db") as db:
        rows = db.execute("SELECT * FROM sessions").fetchall()
    db.close()
    return rows


@pytest.fixture
def server(server_factory: Any) -> Server:
    server: Server = server_factory()
    return server


def test_a_login_trades_a_token_for_a_strict_http_only_cookie(
        server: Server, workspace: Path, data_dir: Path) -> None:
    token = mint(workspace, data_dir, "browser", *READ)
    session_id, document, answer = login(server.url, token)
    assert SESSION_ID.fullmatch(session_id)
    assert answer.headers["cache-control"] == "no-store"
    attributes = {part.strip().split("=")[0].lower(): part.strip()
                  for part in answer.headers["set-cookie"].split(";")[1:]}
    assert set(attributes) == {"max-age", "expires", "path", "httponly", "samesite"}
    assert attributes["samesite"] == "SameSite=Strict" and attributes["path"] == "Path=/"
    assert 43_000 < int(attributes["max-age"].split("=")[1]) <= 12 * 3600  # --session-ttl 12h
    assert "secure" not in attributes  # plain http: a Secure cookie would never come back
    assert document["name"] == "browser" and document["scopes"] == sorted(READ)
    assert document["auth"] == "session" and document["dev"] is False
    assert re.fullmatch(r"[0-9a-f]{64}", document["csrf_token"])
    assert document["expires_at"].endswith("Z")

    # The cookie alone authenticates, with the token's scopes and no more.
    assert httpx.get(f"{server.url}/jobs", headers=jar(session_id), timeout=30).status_code == 200
    refused = httpx.get(f"{server.url}/sources", headers=jar(session_id), timeout=30)
    assert refused.status_code == 403 and refused.json()["missing_scopes"] == ["sources:read"]
    again = httpx.get(f"{server.url}/session", headers=jar(session_id), timeout=30)
    assert again.status_code == 200 and again.json() == document

    # Neither the token, nor the session id, nor its CSRF token is kept or logged: the
    # Core DB holds a digest of the id and the token's id.
    assert server.stop() == 0
    stored = b"".join(path.read_bytes() for path in data_dir.glob("flwd.db*"))
    log = "".join(server.log)
    for secret in (token, session_id, document["csrf_token"]):
        assert secret.encode() not in stored and secret not in log
    [(digest, token_id, _, _)] = session_rows(data_dir)
    assert re.fullmatch(r"[0-9a-f]{64}", digest) and token_id.startswith("tok-")


def test_get_session_answers_a_bearer_token_and_refuses_nothing_at_all(
        server: Server, workspace: Path, data_dir: Path) -> None:
    token = mint(workspace, data_dir, "ci", "runs:read", flags=("--expires", "30d"))
    bearer = httpx.get(f"{server.url}/session", headers={"Authorization": f"Bearer {token}"},
                       timeout=30)
    assert bearer.status_code == 200
    assert bearer.json() | {"expires_at": None} == {
        "name": "ci", "scopes": ["runs:read"], "expires_at": None, "csrf_token": None,
        "auth": "bearer", "dev": False}
    assert bearer.json()["expires_at"] is not None  # the token's expiry
    nobody = httpx.get(f"{server.url}/session", timeout=30)
    assert nobody.status_code == 401 and nobody.json()["code"] == "unauthorized"


@pytest.mark.parametrize(("body", "status"), [
    ({"token": "flwd_unknown"}, 401), ({"token": ""}, 400), ({"token": 5}, 400),
    ({"token": "a b"}, 400), ({"token": "\udcff"}, 400), ({"token": "x" * 5000}, 400),
    ({}, 400), ({"token": "flwd_x", "extra": 1}, 400)])
def test_a_bad_login_is_a_problem_and_sets_no_cookie(server: Server, body: dict[str, Any],
                                                     status: int) -> None:
    answer = httpx.post(f"{server.url}/session", content=json.dumps(body),
                        headers={"Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "set-cookie" not in answer.headers
    if status == 400:
        assert answer.json()["errors"][0]["arg"] in ("token", "extra", "(body)")
    not_json = httpx.post(f"{server.url}/session", content=b"token=x", timeout=30,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert not_json.status_code == 415  # a cross-site form cannot log anyone in


def test_a_login_always_makes_a_fresh_session_and_ends_the_one_it_replaces(
        server: Server, workspace: Path, data_dir: Path) -> None:
    token = mint(workspace, data_dir, "browser", *READ)
    planted = "A" * 43  # an id an attacker chose and planted in the victim's browser
    first, _, _ = login(server.url, token, Cookie=f"flwd_session={planted}")
    assert first != planted
    assert httpx.get(f"{server.url}/jobs", headers=jar(planted), timeout=30).status_code == 401
    second, _, _ = login(server.url, token, **jar(first))
    assert second != first
    assert httpx.get(f"{server.url}/jobs", headers=jar(first), timeout=30).status_code == 401
    assert httpx.get(f"{server.url}/jobs", headers=jar(second), timeout=30).status_code == 200


@pytest.mark.parametrize("cookie", [
    "flwd_session=" + "A" * 6000, "flwd_session=%%%;;;==", "flwd_session", "flwd_session=",
    "flwd_session=\"" + "B" * 43 + "\"", "; ; =", "flwd_session=" + "é" * 43,
    "; ".join(f"flwd_session={n:043d}" for n in range(200))])
def test_a_malformed_or_unknown_cookie_is_401_never_500(server: Server, cookie: str) -> None:
    # Bytes: a cookie is not always ASCII (UTF-8 here, read by the server as Latin-1).
    answer = httpx.get(f"{server.url}/jobs", headers={"Cookie": cookie.encode()}, timeout=30)
    assert answer.status_code == 401, answer.text
    assert answer.json()["code"] == "unauthorized"
    assert "Traceback" not in "".join(server.log)


def test_logout_deletes_the_session_server_side_and_clears_the_cookie(
        server: Server, workspace: Path, data_dir: Path) -> None:
    token = mint(workspace, data_dir, "browser", *READ)
    session_id, _, _ = login(server.url, token)
    out = httpx.delete(f"{server.url}/session", headers=jar(session_id), timeout=30)
    assert out.status_code == 204 and out.content == b""
    assert re.match(r"flwd_session=(\"\")?; .*Max-Age=0", out.headers["set-cookie"])
    # The cookie's value replayed (a copy kept by anyone) no longer opens anything.
    assert httpx.get(f"{server.url}/jobs", headers=jar(session_id), timeout=30).status_code == 401
    assert session_rows(data_dir) == []
    # A logout without a session is a logout too.
    assert httpx.delete(f"{server.url}/session", timeout=30).status_code == 204


def test_a_token_keeps_at_most_16_sessions_the_oldest_evicted(
        server: Server, workspace: Path, data_dir: Path) -> None:
    token = mint(workspace, data_dir, "browser", *READ)
    sessions = [login(server.url, token)[0] for _ in range(17)]
    assert httpx.get(f"{server.url}/jobs", headers=jar(sessions[0]), timeout=30
                     ).status_code == 401
    assert all(httpx.get(f"{server.url}/jobs", headers=jar(s), timeout=30).status_code == 200
               for s in sessions[1:])
    assert len(session_rows(data_dir)) == 16


# -- CSRF ----------------------------------------------------------------------------------------


def _plan(url: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{url}/plans", json={"job_id": "demo", "args": {"name": "x"}},
                      headers=headers, timeout=30)


def test_csrf_a_cookie_authenticated_post_needs_its_token_and_the_same_origin(
        server: Server, workspace: Path, data_dir: Path) -> None:
    token = mint(workspace, data_dir, "browser", *READ)
    session_id, document, _ = login(server.url, token)
    csrf = {"X-CSRF-Token": document["csrf_token"]}
    cookie = jar(session_id)
    refusals = {
        "no token": {},
        "a wrong token": {"X-CSRF-Token": "0" * 64},
        "a foreign origin": {**csrf, "Origin": "http://evil.example"},
        "a foreign page": {**csrf, "Sec-Fetch-Site": "cross-site"},
        "a sibling site": {**csrf, "Sec-Fetch-Site": "same-site"},
        "an opaque origin": {**csrf, "Origin": "null"},
        "another port": {**csrf, "Origin": server.url.rsplit(":", 1)[0] + ":1"},
        "what a foreign form sends": {"Origin": "http://evil.example",
                                      "Sec-Fetch-Site": "cross-site"},
    }
    for why, extra in refusals.items():
        refused = _plan(server.url, {**cookie, **extra})
        assert refused.status_code == 403, (why, refused.text)
        assert refused.json()["code"] == "csrf.failed", why
    # The same origin with its token passes (as a browser sends it, and as curl would).
    same = {**cookie, **csrf, "Origin": server.url, "Sec-Fetch-Site": "same-origin"}
    assert _plan(server.url, same).status_code == 200
    assert _plan(server.url, {**cookie, **csrf}).status_code == 200
    # Reading needs no CSRF token (nothing changes).
    assert httpx.get(f"{server.url}/jobs", headers={**cookie, "Origin": "http://evil.example"},
                     timeout=30).status_code == 200
    # A bearer request is authenticated by its header alone: no cookie, no CSRF.
    bearer = {"Authorization": f"Bearer {token}", "Origin": "http://evil.example",
              "Sec-Fetch-Site": "cross-site"}
    assert _plan(server.url, bearer).status_code == 200
    assert _plan(server.url, {**bearer, "Cookie": "flwd_session=" + "Z" * 43}).status_code == 200
    # A foreign page cannot log a browser in (login CSRF) nor out.
    foreign = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
    answer = httpx.post(f"{server.url}/session", json={"token": token}, headers=foreign,
                        timeout=30)
    assert answer.status_code == 403 and answer.json()["code"] == "csrf.failed"
    assert "set-cookie" not in answer.headers
    out = httpx.delete(f"{server.url}/session", headers={**cookie, **foreign}, timeout=30)
    assert out.status_code == 403
    assert _plan(server.url, {**cookie, **csrf}).status_code == 200


def test_a_raw_cross_site_form_post_with_the_cookie_is_refused(
        server: Server, workspace: Path, data_dir: Path) -> None:
    """What a foreign page's <form method=post> makes the browser send, byte for byte
    (were the cookie attached despite SameSite=Strict): refused before any route runs."""
    token = mint(workspace, data_dir, "browser", *READ, "runs:write")
    session_id, _, _ = login(server.url, token)
    address = urlparse(server.url)
    body = b"job_id=examples.long"
    request = (b"POST /runs HTTP/1.1\r\nHost: %s\r\nOrigin: http://evil.example\r\n"
               b"Sec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: navigate\r\n"
               b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n"
               b"Cookie: flwd_session=%s\r\nConnection: close\r\n\r\n%s"
               % (address.netloc.encode(), len(body), session_id.encode(), body))
    with socket.create_connection((address.hostname, address.port), timeout=30) as raw:
        raw.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < int(
                re.search(rb"content-length: (\d+)", answer.lower()).group(1)):  # type: ignore[union-attr]
            chunk = raw.recv(65536)
            assert chunk, answer
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403"), head
    assert json.loads(payload)["code"] == "csrf.failed"
    runs = httpx.get(f"{server.url}/runs", headers={"Authorization": f"Bearer {token}"},
                     timeout=30)
    assert runs.json() == []


# -- lifetime --------------------------------------------------------------------------------------


def test_a_session_survives_a_restart_of_the_server(
        server_factory: Any, workspace: Path, data_dir: Path) -> None:
    token = mint(workspace, data_dir, "browser", *READ)
    first = server_factory()
    session_id, document, _ = login(first.url, token)
    assert first.stop() == 0
    second = server_factory()
    again = httpx.get(f"{second.url}/session", headers=jar(session_id), timeout=30)
    assert again.status_code == 200
    assert again.json() == document  # the same CSRF token too: a page open across it works
    csrf = {"X-CSRF-Token": document["csrf_token"]}
    assert _plan(second.url, {**jar(session_id), **csrf}).status_code == 200


def test_a_session_expires_after_its_ttl_and_its_row_goes(
        server_factory: Any, workspace: Path, data_dir: Path) -> None:
    token = mint(workspace, data_dir, "browser", *READ)
    server = server_factory("--session-ttl", "2s")
    session_id, _, answer = login(server.url, token)
    assert "Max-Age=2;" in answer.headers["set-cookie"]
    wait_until(lambda: httpx.get(f"{server.url}/jobs", headers=jar(session_id), timeout=30
                                 ).status_code == 401, "the session to expire")
    assert session_rows(data_dir) == []


def test_a_session_ends_with_its_token_expiry(
        server: Server, workspace: Path, data_dir: Path) -> None:
    token = mint(workspace, data_dir, "browser", *READ, flags=("--expires", "1h"))
    _, document, answer = login(server.url, token)
    listed = run_cli([":tokens", "list", "--json"], cwd=workspace, data_dir=data_dir)
    assert document["expires_at"] == json.loads(listed.stdout)[0]["expires_at"]
    max_age = int(re.search(r"Max-Age=(\d+)", answer.headers["set-cookie"]).group(1))  # type: ignore[union-attr]
    assert 3500 < max_age <= 3600


def test_session_ttl_must_be_a_duration(workspace: Path, data_dir: Path) -> None:
    for bad in ("0s", "soon", "-1h"):
        refused = run_cli([":serve", "--session-ttl", bad, "--bind", "127.0.0.1:0"],
                          cwd=workspace, data_dir=data_dir)
        assert refused.returncode == 2, refused.stderr
        assert "--session-ttl" in refused.stderr and "Traceback" not in refused.stderr


def test_dev_needs_no_login(server_factory: Any) -> None:
    server = server_factory("--dev")
    answer = httpx.get(f"{server.url}/session", timeout=30)
    assert answer.status_code == 200
    document = answer.json()
    assert (document["name"], document["auth"], document["dev"]) == ("dev", "dev", True)
    assert "runs:write" in document["scopes"] and document["csrf_token"]
    logged = httpx.post(f"{server.url}/session", json={"token": "dev-token"}, timeout=30)
    assert logged.status_code == 201 and "set-cookie" not in logged.headers
    assert logged.json() == document


# -- revocation ------------------------------------------------------------------------------------


def test_revoking_a_token_ends_its_session_and_the_streams_it_opened(
        server: Server, workspace: Path, data_dir: Path) -> None:
    browser = mint(workspace, data_dir, "browser", *READ)
    watcher = mint(workspace, data_dir, "watcher", "events:read")
    session_id, _, _ = login(server.url, browser)
    with httpx.stream("GET", f"{server.url}/events", headers=jar(session_id),
                      timeout=30) as by_cookie, \
            httpx.stream("GET", f"{server.url}/events",
                         headers={"Authorization": f"Bearer {watcher}"},
                         timeout=30) as by_bearer:
        assert by_cookie.status_code == by_bearer.status_code == 200
        cookie_lines, bearer_lines = by_cookie.iter_lines(), by_bearer.iter_lines()
        assert next(cookie_lines).startswith("retry:")
        assert next(bearer_lines).startswith("retry:")
        # No event flows: only the re-check of the token can end these streams, well
        # before the first keep-alive (15 s) would have been written.
        revoke(workspace, data_dir, "browser")
        started = time.monotonic()
        assert [line for line in cookie_lines if line.strip()] == [":connected"]
        assert time.monotonic() - started < 10
        # The other token's stream is still open: it ends with its own token.
        revoke(workspace, data_dir, "watcher")
        assert [line for line in bearer_lines if line.strip()] == [":connected"]
    refused = httpx.get(f"{server.url}/jobs", headers=jar(session_id), timeout=30)
    assert refused.status_code == 401
    assert "log in again" in refused.json()["detail"]
    assert session_rows(data_dir) == []  # found dead on that lookup, and deleted


def test_a_logout_ends_the_streams_its_session_opened(
        server: Server, workspace: Path, data_dir: Path) -> None:
    token = mint(workspace, data_dir, "browser", *READ)
    session_id, _, _ = login(server.url, token)
    other, _, _ = login(server.url, token)  # another browser of the same token
    with httpx.stream("GET", f"{server.url}/events", headers=jar(session_id),
                      timeout=30) as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        assert httpx.delete(f"{server.url}/session", headers=jar(session_id),
                            timeout=30).status_code == 204
        assert [line for line in lines if line.strip()] == [":connected"]
    assert httpx.get(f"{server.url}/jobs", headers=jar(other), timeout=30).status_code == 200


def _websocket(url: str, path: str, headers: dict[str, str],
               during: Callable[[], None]) -> tuple[int, list[dict[str, Any]]]:
    """Open a WebSocket, read a message, call ``during`` (in a thread), then read until
    the server closes: (the close code, the messages read). The TCP stream is ours."""
    import trio
    from trio_websocket import ConnectionClosed, wrap_client_stream

    address = urlparse(url)
    assert address.hostname is not None and address.port is not None

    async def main() -> tuple[int, list[dict[str, Any]]]:
        messages: list[dict[str, Any]] = []
        code = 0
        stream = await trio.open_tcp_stream(address.hostname, address.port)
        async with stream, trio.open_nursery() as nursery:
            ws = await wrap_client_stream(nursery, stream, address.netloc, path,
                                          extra_headers=[(k.encode(), v.encode())
                                                         for k, v in headers.items()])
            with trio.fail_after(60):
                messages.append(json.loads(await ws.get_message()))
                await trio.to_thread.run_sync(during)
                try:
                    while True:
                        messages.append(json.loads(await ws.get_message()))
                except ConnectionClosed as closed:
                    assert closed.reason is not None
                    code = closed.reason.code
            await ws.aclose()
        return code, messages

    return trio.run(main)


def _handshake(url: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """A WebSocket handshake that must be refused: (status, problem). The TCP stream is
    ours, so it is closed whatever happens (trio-websocket leaves a refused connection's
    socket to the collector)."""
    import trio
    from trio_websocket import ConnectionRejected, wrap_client_stream

    address = urlparse(url)
    assert address.hostname is not None and address.port is not None

    async def main() -> tuple[int, dict[str, Any]]:
        refusals: list[BaseException] = []
        stream = await trio.open_tcp_stream(address.hostname, address.port)
        async with stream:
            try:
                async with trio.open_nursery() as nursery:
                    await wrap_client_stream(nursery, stream, address.netloc, path,
                                             extra_headers=[(k.encode(), v.encode())
                                                            for k, v in headers.items()])
            except* ConnectionRejected as group:
                refusals.extend(group.exceptions)
        refused = refusals[0] if refusals else None
        assert isinstance(refused, ConnectionRejected), "the handshake was accepted"
        return refused.status_code, json.loads(refused.body or b"{}")

    return trio.run(main)


def test_revoking_a_token_closes_the_websocket_its_session_opened(
        server: Server, workspace: Path, data_dir: Path) -> None:
    admin = mint(workspace, data_dir, "admin", "*")
    browser = mint(workspace, data_dir, "browser", *READ, "runs:write")
    session_id, _, _ = login(server.url, browser)
    bearer = {"Authorization": f"Bearer {admin}"}
    started = httpx.post(f"{server.url}/runs", headers=bearer, timeout=30,
                         json={"job_id": "examples.long", "args": {"seconds": 120}})
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]
    path = f"/runs/{run_id}/ws"
    try:
        # A cookie opens a WebSocket only from this server's own pages.
        for why, extra in {"no Origin": {}, "a foreign Origin": {"Origin": "http://evil.example"}
                           }.items():
            status, problem = _handshake(server.url, path, {**jar(session_id), **extra})
            assert (status, problem.get("code")) == (403, "csrf.failed"), why
        code, messages = _websocket(server.url, path, {**jar(session_id), "Origin": server.url},
                                    lambda: revoke(workspace, data_dir, "browser"))
        assert code == 1008  # policy violation: the token or session no longer holds
        assert messages and all(message["run_id"] == run_id for message in messages)
    finally:
        httpx.post(f"{server.url}/runs/{run_id}:cancel", headers=bearer, timeout=30)
