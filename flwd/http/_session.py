"""Browser sessions: ``POST|GET|DELETE /session``, and who a request is (bearer, cookie, --dev).

A browser trades a bearer token for a session cookie once (``POST /session``)
and is then recognised by the cookie — ``EventSource`` and WebSockets cannot
send an ``Authorization`` header. :func:`credentials` decides who sends a
request, for every route: the ``Authorization`` header if there is one (then
the cookie is not looked at, nor is CSRF checked); else, outside ``--dev``,
the session cookie, with the CSRF checks of ``_browser`` on every request
that changes something and on every WebSocket handshake.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, Response, jsonify, request

from flwd.tokens import SCOPES, format_time

from ._auth import Principal, Refusal
from ._browser import (
    CSRF_HEADER,
    SAFE_METHODS,
    cookie_name,
    cross_site,
    csrf_matches,
    over_tls,
    session_cookies,
)
from ._problems import HttpProblem, unauthorized
from ._request import current_principal, json_body
from ._state import AppState, current_state

__all__ = ["SessionInfo", "SessionRequest", "blueprint", "credentials"]

blueprint = Blueprint("session", __name__)


class SessionRequest(BaseModel):
    """``POST /session``: the bearer token to log in with (stored nowhere)."""

    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=4096, pattern=r"^[!-~]+$",
                       description="A bearer token (flwd :tokens create)")


class SessionInfo(BaseModel):
    """Who the caller is: ``POST /session`` and ``GET /session``."""

    name: str = Field(description="The token's name (dev: `dev`)")
    scopes: list[str] = Field(description="What the caller may do: the token's scopes now")
    expires_at: str | None = Field(description="When the session (or the bearer token) "
                                               "ends, UTC; null: never")
    csrf_token: str | None = Field(description="Send it as X-CSRF-Token with every "
                                               "state-changing request the cookie "
                                               "authenticates; null for a bearer token")
    auth: Literal["session", "bearer", "dev"] = Field(
        description="How the caller was recognised: the session cookie, a bearer "
                    "token, or --dev (no credentials)")
    dev: bool = Field(description="The server runs with --dev (no login needed)")


async def credentials(state: AppState, headers: Any, *, method: str,
                      websocket: bool = False) -> Principal | Refusal:
    """Who sends a request to a route that needs credentials, or why it gets a 401.

    Raises:
        HttpProblem: 403 ``csrf.failed`` for a cookie-authenticated request that
            changes something (or opens a WebSocket) and is, or may be, cross-site.
        StorageError: the Core DB cannot be read (503).

    Cancellation: as :meth:`Sessions.resolve`.
    """
    header = headers.get("Authorization")
    cookies = [] if header or state.options.dev else session_cookies(headers.get("Cookie"))
    if not cookies:
        return state.authenticator.authenticate(header)
    principal = await state.sessions.resolve(cookies)
    if isinstance(principal, Principal) and (websocket or method.upper() not in SAFE_METHODS):
        _check_csrf(headers, principal, websocket=websocket)
    return principal


def _check_csrf(headers: Any, principal: Principal, *, websocket: bool) -> None:
    assert principal.session is not None
    origin = headers.get("Origin")
    reason = cross_site(origin, headers.get("Sec-Fetch-Site"), headers.get("Host"))
    if reason is None and websocket and origin is None:
        reason = "a WebSocket handshake must send its Origin"
    if reason is None and not websocket:
        sent = headers.get(CSRF_HEADER)
        if not csrf_matches(sent, principal.session.csrf_token):
            reason = (f"its {CSRF_HEADER} is not this session's" if sent else
                      f"it has no {CSRF_HEADER} header (GET /session gives the token)")
    if reason is not None:
        raise HttpProblem(403, "csrf check failed", "refused a request the session cookie "
                          f"authenticates: {reason}", code="csrf.failed")


def _refuse_cross_site() -> None:
    """A login or logout is refused from a page of another site (login CSRF)."""
    reason = cross_site(request.headers.get("Origin"), request.headers.get("Sec-Fetch-Site"),
                        request.headers.get("Host"))
    if reason is not None:
        raise HttpProblem(403, "csrf check failed", f"refused a login or logout: {reason}",
                          code="csrf.failed")


def _secure() -> bool:
    return over_tls(request.scheme, request.headers.get("Origin"))


async def _document(state: AppState, principal: Principal) -> dict[str, Any]:
    dev = state.options.dev
    expires: float | None = None
    csrf: str | None = None
    if principal.session is not None:
        auth, expires, csrf = "session", principal.session.expires_at, principal.session.csrf_token
    elif principal.token_id is None:
        # --dev: nothing checks the token, but a page may send it all the same.
        auth, csrf = "dev", await state.sessions.csrf_token("dev")
    else:
        auth = "bearer"
        entry = state.sessions.tokens.active(principal.token_id)
        expires = entry.expires_at if entry is not None else None
    return SessionInfo(name=principal.name, scopes=sorted(principal.scopes),
                       expires_at=format_time(expires) if expires is not None else None,
                       csrf_token=csrf, auth=auth, dev=dev).model_dump()  # type: ignore[arg-type]


def _answer(document: dict[str, Any], status: int) -> Response:
    response = jsonify(document)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.post("/session")
async def create_session() -> Response:
    """Log in: trade a bearer token for a session cookie (``HttpOnly; SameSite=Strict``).

    Cancellation: the session may have been stored without its cookie being sent;
    it expires unused.
    """
    _refuse_cross_site()
    body, _ = await json_body(SessionRequest)
    state = current_state()
    principal = state.authenticator.check_token(body.token)
    if isinstance(principal, Refusal):
        raise unauthorized(principal.detail, principal.error)
    if state.options.dev or principal.token_id is None:
        dev = Principal("dev", frozenset(SCOPES))
        return _answer(await _document(state, dev), 201)
    entry = state.sessions.tokens.active(principal.token_id)
    if entry is None:  # revoked between the two looks
        raise unauthorized("unknown or revoked token", "invalid_token")
    # The browser's previous session (if any) ends: one login, one session.
    await state.sessions.end(session_cookies(request.headers.get("Cookie")))
    session_id, session = await state.sessions.login(entry)
    assert session.session is not None
    response = _answer(await _document(state, session), 201)
    max_age = max(1, round(session.session.expires_at - state.sessions.tokens.now()))
    secure = _secure()
    response.set_cookie(cookie_name(secure), session_id, max_age=max_age, path="/",
                        secure=secure, httponly=True, samesite="Strict")
    return response


@blueprint.get("/session")
async def get_session() -> Response:
    """Who the caller is (the cookie's session, a bearer token, or ``--dev``).

    Cancellation: nothing is left behind.
    """
    principal = current_principal()
    assert principal is not None  # not an open endpoint
    return _answer(await _document(current_state(), principal), 200)


@blueprint.delete("/session")
async def delete_session() -> Response:
    """Log out: delete the cookie's session (if any) and clear the cookie. Always 204.

    Cancellation: the session may be deleted and the cookie not cleared; it no
    longer opens anything.
    """
    _refuse_cross_site()
    await current_state().sessions.end(session_cookies(request.headers.get("Cookie")))
    response = Response("", status=204)
    response.headers["Cache-Control"] = "no-store"
    secure = _secure()
    response.delete_cookie(cookie_name(False), path="/", httponly=True, samesite="Strict")
    if secure:
        response.delete_cookie(cookie_name(True), path="/", secure=True, httponly=True,
                               samesite="Strict")
    return response
