"""Raw ASGI pieces shared by the Quart app (``_app``) and the fast path (``_fast``): the
request id and log line every request gets, the body limit, and reading, replaying and
streaming a request's messages without Quart."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import aclosing
from typing import Any

import trio

from ._auth import Principal

__all__ = ["MAX_BODY", "ASGIApp", "Message", "Receive", "Scope", "Send", "content_length",
           "header", "log_request", "read_body", "replay", "request_id", "send_stream"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]

_log = logging.getLogger("flwd.http")

#: Request bodies are limited to this many bytes (Quart's MAX_CONTENT_LENGTH: a 413).
MAX_BODY = 1 << 20
#: An X-Request-ID a client may choose (anything else is replaced by one of ours).
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: An X-Request-ID a client may choose (anything else is replaced by one of ours).
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id(given: str) -> str:
    """The id a request is logged and answered with: the client's, when it is a short
    token, else one of ours."""
    return given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex[:16]


def log_request(method: str, route: str | None, status: int, elapsed: float,
                principal: Principal | None, request_id: str | None) -> None:
    """The one log line of every request (the fast path's and the app's alike)."""
    _log.info("request", extra={"fields": {
        "method": method, "route": route or "(unmatched)", "status": status,
        "duration_ms": round(elapsed * 1000, 2),
        "subject": principal.name if principal else None,
        "request_id": request_id}})


async def send_stream(stream: Any, receive: Receive, send: Send) -> None:
    """Send the body until it ends or the client leaves (as quart-trio does: a task
    waits for ``http.disconnect`` and cancels the body).

    Cancellation: the body is closed (its slot released).
    """
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            nursery.cancel_scope.cancel()

        nursery.start_soon(watch)
        async with aclosing(stream):
            async for chunk in stream:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        nursery.cancel_scope.cancel()


def header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def content_length(value: bytes | None) -> int | None:
    """A body length this path reads (None: absent, odd or over the limit: the app's)."""
    if value is None or not value.isdigit() or len(value) > 8:
        return None
    length = int(value)
    return length if 0 < length <= MAX_BODY else None


async def read_body(receive: Receive, length: int) -> tuple[list[Message], bytes | None]:
    """The messages received, and the body (None: it is not ``length`` bytes of one
    request — the client left, say — and the app is to see the messages as they came).

    Cancellation: the messages read so far are lost with the request.
    """
    received: list[Message] = []
    size = 0
    while True:
        message = await receive()
        received.append(message)
        if message["type"] != "http.request":
            return received, None
        size += len(message.get("body", b""))
        if size > length:
            return received, None
        if not message.get("more_body", False):
            break
    if size != length:
        return received, None
    return received, b"".join(message.get("body", b"") for message in received)


def replay(received: list[Message], receive: Receive) -> Receive:
    """``receive`` as the app sees it: the messages already taken first."""
    pending = list(received)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
