"""The OpenAPI paths of browser sessions (``_session``): log in, who am I, log out."""

from __future__ import annotations

from typing import Any

from ._browser import COOKIE, CSRF_HEADER
from ._openapi_parts import json_response, operation, problem, problems, ref

_NO_STORE = {"Cache-Control": {"description": "no-store", "schema": {"type": "string"}}}
_CROSS_SITE = problem("csrf.failed: sent from a page of another site (Origin or "
                      "Sec-Fetch-Site)")

#: The cookie, for ``components.securitySchemes``.
SESSION_SCHEME = {
    "type": "apiKey", "in": "cookie", "name": COOKIE,
    "description": f"A browser session (POST /session); over TLS the cookie is named "
                   f"__Host-{COOKIE}. A request it authenticates that changes something "
                   f"must send {CSRF_HEADER} (GET /session gives it) and come from this "
                   "server's own pages, else 403 csrf.failed. An Authorization header wins "
                   "over the cookie."}


def session_paths() -> dict[str, Any]:
    created = json_response(ref("SessionInfo"), "Logged in: Set-Cookie carries the session")
    created["headers"] = {**_NO_STORE, "Set-Cookie": {
        "description": f"{COOKIE}=…; HttpOnly; SameSite=Strict; Path=/; Max-Age=… "
                       "(+ Secure over TLS)", "schema": {"type": "string"}}}
    current = json_response(ref("SessionInfo"))
    current["headers"] = _NO_STORE
    return {"/session": {
        "post": operation(
            "Log in: trade a bearer token for a session cookie (--dev: nothing to do)", (),
            {"201": created, **problems(400, 401, 413, 415), "403": _CROSS_SITE},
            requestBody={"required": True, "content": {
                "application/json": {"schema": ref("SessionRequest")}}}),
        "get": operation("Who the caller is: its session, bearer token or --dev", (),
                         {"200": current, **problems(401)}, authenticated=True),
        "delete": operation(
            "Log out: end the cookie's session server-side and clear the cookie", (),
            {"204": {"description": "Logged out (also without a session)",
                     "headers": {"Set-Cookie": {"description": f"{COOKIE}=; Max-Age=0",
                                                "schema": {"type": "string"}}}},
             "403": _CROSS_SITE}),
    }}
