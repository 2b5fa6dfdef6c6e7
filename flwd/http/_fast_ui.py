"""The web UI's files in raw ASGI (the fast path's part; see ``_fast``).

A cold page load asks for the shell's every module and style at once — seventeen
requests — and Quart's machinery per request cost the server more than finding and
sending the file. A plain ``GET /ui/~<release>/<file>`` of a file the UI has is
answered here, with what the ``_ui`` blueprint and the app's hooks give it: the
security headers, the validator and cache policy, a 304 for a matching
``If-None-Match``, the request id, the log line and the metrics. Anything else — a
file it does not have, a query, a body, an ``Origin`` (CORS in --dev), a shell
(``/``) or a name of no release — is the app's, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from flwd import ui

from ._asgi import Scope, Send, header, request_id
from ._ui import ASSET_ROUTE, IMMUTABLE, NO_CACHE, SECURITY_HEADERS, find_asset

__all__ = ["UI_PREFIX", "serve_asset"]

#: The paths this part answers: the files named under a release.
UI_PREFIX = "/ui/" + ui.RELEASE_MARK
_SECURITY = [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]
#: Request headers that hand the request to the app (a body; CORS in --dev).
_TO_THE_APP = frozenset({b"origin", b"content-length", b"transfer-encoding"})

Finish = Callable[[list[tuple[bytes, bytes]], str], list[tuple[bytes, bytes]]]
Observe = Callable[[str, int, str], None]


async def serve_asset(scope: Scope, send: Send, finish: Finish, observe: Observe) -> bool:
    """Answer ``GET /ui/~<release>/<file>`` when it is this path's to answer; False: hand
    the request to the app (nothing was sent). ``finish`` adds the headers every
    answer gets; ``observe`` logs and counts it.

    Cancellation: nothing is left behind (the answer may be cut short).
    """
    if any(name in _TO_THE_APP for name, _ in scope["headers"]):
        return False
    found, _, current = await find_asset(scope["path"][len("/ui/"):])
    if found is None:
        return False  # the app's 404 problem
    rid = request_id(header(scope, b"x-request-id"))
    headers = [(b"etag", found.etag.encode()),
               (b"cache-control", (IMMUTABLE if current else NO_CACHE).encode()), *_SECURITY]
    if ui.etag_matches(header(scope, b"if-none-match"), found.etag):
        status, body = 304, b""
    else:
        status, body = 200, found.body
        headers += [(b"content-type", found.content_type.encode()),
                    (b"content-length", str(len(body)).encode())]
    observe(ASSET_ROUTE, status, rid)
    await send({"type": "http.response.start", "status": status,
                "headers": finish(headers, rid)})
    await send({"type": "http.response.body", "body": body, "more_body": False})
    return True
