"""The raw-ASGI fast path (``flwd.http._fast``): which requests it answers itself, and
that it hands every other one to the app untouched — the body it read replayed as it
came, so the app's refusal is the same as without it.

No engine is needed for these: everything handed over is decided before a run is
submitted (the answers with a run are end to end, in tests/e2e/test_runs_stream.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import pytest

from flwd.http._app import create_app
from flwd.http._auth import Authenticator
from flwd.http._fast import FastPath
from flwd.http._metrics import Metrics
from flwd.http._state import EXTENSION, AppState, ServeOptions
from flwd.tokens import TokenStore, create_token

BODY = b'{"job_id": "demo", "args": {}}'
RUN_HEADERS = [(b"host", b"127.0.0.1:8080"), (b"authorization", b"Bearer dev-token"),
               (b"accept", b"text/event-stream"), (b"content-type", b"application/json"),
               (b"content-length", str(len(BODY)).encode())]


class Recorder:
    """The app behind the fast path: records what reached it, body included."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], bytes]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.calls.append((dict(scope), body))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _state(tmp_path: Path, *, dev: bool = True, max_streams: int = 8) -> AppState:
    # Nothing here reaches the engine: every request below is answered or handed
    # over before a run would be submitted.
    return AppState.build(cast(Any, None), ServeOptions(dev=dev, max_streams=max_streams),
                          Authenticator(TokenStore(tmp_path / "tokens.json"), dev=dev),
                          Metrics("secure"))


async def _call(path: FastPath, method: str, target: str, headers: list[tuple[bytes, bytes]],
                chunks: list[bytes]) -> list[dict[str, Any]]:
    route, _, query = target.partition("?")
    scope = {"type": "http", "method": method, "path": route, "query_string": query.encode(),
             "headers": headers, "http_version": "1.1", "scheme": "http"}
    messages = [{"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
                for index, chunk in enumerate(chunks or [b""])]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await path(scope, receive, send)
    return sent


def _with(headers: list[tuple[bytes, bytes]], **changes: bytes | None) -> list[tuple[bytes, bytes]]:
    names = {key.replace("_", "-").encode(): value for key, value in changes.items()}
    kept = [(key, value) for key, value in headers if key not in names]
    return kept + [(key, value) for key, value in names.items() if value is not None]


HANDED_OVER = {
    "JSON asked for": (_with(RUN_HEADERS, accept=b"application/json"), BODY),
    "Accept with a choice": (_with(RUN_HEADERS, accept=b"text/event-stream, application/json"),
                             BODY),
    "an Origin (CORS)": (_with(RUN_HEADERS, origin=b"http://localhost:3000"), BODY),
    "a session cookie": (_with(RUN_HEADERS, cookie=b"flwd_session=x"), BODY),
    "an Idempotency-Key": (_with(RUN_HEADERS, idempotency_key=b"k1"), BODY),
    "an Idempotency-SHA256": (_with(RUN_HEADERS, idempotency_sha256=b"0" * 64), BODY),
    "a chunked body": (_with(RUN_HEADERS, transfer_encoding=b"chunked", content_length=None),
                       BODY),
    "a repeated header": ([*RUN_HEADERS, (b"accept", b"text/event-stream")], BODY),
    "not JSON": (_with(RUN_HEADERS, content_type=b"text/plain"), BODY),
    "a body that is not JSON": (_with(RUN_HEADERS, content_length=b"8"), b"{not js}"),
    "the words form": (_with(RUN_HEADERS, content_length=b"19"), b'{"words": ["demo"]}'),
    "a body the model refuses": (_with(RUN_HEADERS, content_length=b"12"), b'{"args": {}}'),
    "an unknown field": (_with(RUN_HEADERS, content_length=b"29"),
                         b'{"job_id": "demo", "nope": 1}'),
    "an empty body": (_with(RUN_HEADERS, content_length=b"0"), b""),
    "a body over the limit": (_with(RUN_HEADERS, content_length=str(2 << 20).encode()), BODY),
    "a short body": (_with(RUN_HEADERS, content_length=b"99"), BODY),
    "a malformed Authorization": (_with(RUN_HEADERS, authorization=b"Basic eA=="), BODY),
    "another Host (--dev)": (_with(RUN_HEADERS, host=b"evil.example"), BODY),
}


@pytest.mark.parametrize("case", sorted(HANDED_OVER))
async def test_what_the_fast_path_hands_to_the_app(tmp_path: Path, case: str) -> None:
    headers, body = HANDED_OVER[case]
    inner = Recorder()
    path = FastPath(inner, _state(tmp_path))
    # The body in two pieces: the app must see all of it, as sent.
    sent = await _call(path, "POST", "/runs", headers, [body[:5], body[5:]])
    assert len(inner.calls) == 1, case
    scope, received = inner.calls[0]
    assert scope["headers"] == headers and received == body
    assert sent[0]["status"] == 299


async def test_a_token_without_the_scopes_of_reading_goes_to_the_app(tmp_path: Path) -> None:
    writer = create_token(tmp_path / "tokens.json", "writer", ["runs:write"]).token
    store = TokenStore(tmp_path / "tokens.json")
    unknown = "flwd_" + "x" * 40
    state = AppState.build(cast(Any, None), ServeOptions(), Authenticator(store, dev=False),
                           None)
    for token in (writer, unknown, None):
        inner = Recorder()
        headers = _with(RUN_HEADERS, authorization=f"Bearer {token}".encode() if token
                        else None)
        await _call(FastPath(inner, state), "POST", "/runs", headers, [BODY])
        assert [body for _, body in inner.calls] == [BODY], token


async def test_no_stream_slot_left_goes_to_the_app(tmp_path: Path) -> None:
    # The app refuses it (503 streams.busy, counted): nothing was started here.
    state = _state(tmp_path, max_streams=1)
    taken = state.streams.try_take()
    assert taken is not None
    inner = Recorder()
    await _call(FastPath(inner, state), "POST", "/runs", RUN_HEADERS, [BODY])
    assert [body for _, body in inner.calls] == [BODY]
    assert state.streams.in_use == 1


async def test_healthz_is_answered_logged_and_counted_without_the_app(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = _state(tmp_path)
    inner = Recorder()
    path = FastPath(inner, state)
    headers = [(b"host", b"localhost:8080"), (b"x-request-id", b"probe-1")]
    with caplog.at_level(logging.INFO, logger="flwd.http"):
        sent = await _call(path, "GET", "/healthz", headers, [])
    assert inner.calls == []
    assert sent[0] == {"type": "http.response.start", "status": 204, "headers": [
        (b"cache-control", b"no-store"), (b"x-request-id", b"probe-1"), (b"vary", b"Origin")]}
    assert sent[1]["body"] == b"" and not sent[1]["more_body"]
    fields = [record.fields for record in caplog.records  # type: ignore[attr-defined]
              if record.name == "flwd.http"]
    assert len(fields) == 1 and fields[0]["route"] == "/healthz" and fields[0]["status"] == 204
    assert fields[0]["request_id"] == "probe-1" and fields[0]["subject"] is None
    assert fields[0]["method"] == "GET"
    assert state.metrics is not None
    assert state.metrics.registry.get_sample_value(
        "flwd_http_requests_total",
        {"method": "GET", "route": "/healthz", "code": "204"}) == 1.0


@pytest.mark.parametrize(("method", "target", "headers"), [
    ("HEAD", "/healthz", []),
    ("GET", "/healthz?x=1", []),
    ("GET", "/healthz", [(b"origin", b"http://localhost:3000")]),
    ("GET", "/healthz", [(b"host", b"evil.example")]),
    ("GET", "/healthz/", []),
    ("GET", "/runs", []),
])
async def test_other_requests_go_to_the_app(tmp_path: Path, method: str, target: str,
                                            headers: list[tuple[bytes, bytes]]) -> None:
    inner = Recorder()
    await _call(FastPath(inner, _state(tmp_path)), method, target,
                [(b"host", b"127.0.0.1:8080"), *headers], [])
    assert len(inner.calls) == 1


def test_the_app_is_built_behind_the_fast_path(tmp_path: Path) -> None:
    app = create_app(cast(Any, None), ServeOptions(), cast(Any, None), None)
    assert isinstance(app.asgi_app, FastPath)
    assert app.asgi_app.state is app.extensions[EXTENSION]


@pytest.mark.parametrize("headers", [
    [(b"last-event-id", b"3")],
    [(b"origin", b"http://localhost:3000")],
    [(b"cookie", b"flwd_session=x")],
    [(b"content-length", b"2")],
    [(b"authorization", b"Bearer dev-token"), (b"authorization", b"Bearer dev-token")],
])
async def test_event_streams_with_a_cursor_or_a_browser_go_to_the_app(
        tmp_path: Path, headers: list[tuple[bytes, bytes]]) -> None:
    # (Whether the run is live is asked last: these never reach the engine.)
    inner = Recorder()
    await _call(FastPath(inner, _state(tmp_path)), "GET", "/runs/run-1/events",
                [(b"host", b"127.0.0.1:8080"), *headers], [])
    assert len(inner.calls) == 1


# -- the UI's files ------------------------------------------------------------------


async def test_a_ui_file_of_the_release_is_answered_logged_and_counted_without_the_app(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from flwd import ui

    state = _state(tmp_path, dev=False)
    inner = Recorder()
    path = FastPath(inner, state)
    target = f"/ui/~{ui.release()}/js/app.js"
    found = ui.asset("js/app.js")
    assert found is not None
    with caplog.at_level(logging.INFO, logger="flwd.http"):
        sent = await _call(path, "GET", target, [(b"host", b"127.0.0.1:8080")], [])
        again = await _call(path, "GET", target, [(b"if-none-match", b'"x", W/' +
                                                   found.etag.encode())], [])
    assert inner.calls == []
    start = dict(sent[0]["headers"])
    assert sent[0]["status"] == 200 and sent[1]["body"] == found.body
    assert start[b"etag"] == found.etag.encode()
    assert start[b"cache-control"] == b"public, max-age=31536000, immutable"
    assert start[b"content-type"] == b"text/javascript; charset=utf-8"
    assert start[b"content-security-policy"].startswith(b"default-src 'none'")
    assert again[0]["status"] == 304 and again[1]["body"] == b""
    assert b"content-type" not in dict(again[0]["headers"])
    routes = [record.fields["route"] for record in caplog.records  # type: ignore[attr-defined]
              if record.name == "flwd.http"]
    assert routes == ["/ui/<path:asset_path>"] * 2
    assert state.metrics is not None
    assert state.metrics.registry.get_sample_value(
        "flwd_http_requests_total",
        {"method": "GET", "route": "/ui/<path:asset_path>", "code": "304"}) == 1.0


@pytest.mark.parametrize(("target", "headers"), [
    ("/ui/~{release}/js/nope.js", []),  # no such file: the app's 404 problem
    ("/ui/~{release}/js/app.js?v=1", []),
    ("/ui/~{release}/js/app.js", [(b"origin", b"http://localhost:3000")]),
    ("/ui/~{release}/js/app.js", [(b"content-length", b"2")]),
    ("/ui/js/app.js", []),  # no release named
    ("/", []),
])
async def test_other_ui_requests_go_to_the_app(tmp_path: Path, target: str,
                                               headers: list[tuple[bytes, bytes]]) -> None:
    from flwd import ui

    inner = Recorder()
    await _call(FastPath(inner, _state(tmp_path)), "GET", target.format(release=ui.release()),
                [(b"host", b"127.0.0.1:8080"), *headers], [b"{}"] if headers[1:] else [])
    assert len(inner.calls) == 1


async def test_without_the_ui_its_files_go_to_the_app(tmp_path: Path) -> None:
    from flwd import ui

    state = AppState.build(cast(Any, None), ServeOptions(ui=False),
                           Authenticator(TokenStore(tmp_path / "tokens.json"), dev=False), None)
    inner = Recorder()
    await _call(FastPath(inner, state), "GET", f"/ui/~{ui.release()}/js/app.js", [], [])
    assert len(inner.calls) == 1
