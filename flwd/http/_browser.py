"""A browser's credentials: the session cookie, its CSRF token, and same-origin checks (sans-IO).

``EventSource`` and a WebSocket cannot send an ``Authorization`` header, so a
browser logs in once (``POST /session`` with a bearer token) and is given a
cookie holding an opaque random **session id**; the server keeps only a digest
of it (:func:`session_digest`). A cookie is sent by the browser on its own,
so a request it authenticates may have been made by a page of another site
(cross-site request forgery). Three doors close that:

- **SameSite=Strict**: the browser does not attach the cookie to a request
  another site starts (links, forms, ``fetch``).
- **Not cross-site**: a state-changing request (and a WebSocket handshake)
  authenticated by the cookie must not say it comes from elsewhere:
  ``Sec-Fetch-Site`` absent, ``same-origin`` or ``none``, and ``Origin``, when
  sent, naming this server (:func:`cross_site`).
- **X-CSRF-Token**: it must also carry the session's CSRF token
  (:func:`csrf_token`, an HMAC of the session id), which a page reads from
  ``GET /session`` — a foreign page cannot read it (no CORS outside ``--dev``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from ._origins import host_name

#: The cookie over plain HTTP, and over TLS (``__Host-``: the browser takes it only
#: Secure, for Path=/ and without Domain, so a sibling sub-domain cannot plant one).
COOKIE = "flwd_session"
SECURE_COOKIE = "__Host-flwd_session"
#: The header a cookie-authenticated state-changing request carries.
CSRF_HEADER = "X-CSRF-Token"
#: Session cookies looked at per request at most (a browser may send several of one
#: name: one per path or domain that set it); the rest are ignored.
MAX_COOKIES = 4
#: Methods that change nothing: they need no CSRF token.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: ``secrets.token_urlsafe(32)``: 32 random bytes, base64url without padding.
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")
_ID_BYTES = 32
_SITES = frozenset({"same-origin", "none"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}


@dataclass(frozen=True, slots=True)
class SessionGrant:
    """What a request authenticated by a session cookie knows of its session."""

    #: :func:`session_digest` of the id (what the Core DB keys it by).
    digest: str
    #: Seconds since the epoch.
    expires_at: float
    #: :func:`csrf_token` of the id.
    csrf_token: str


def new_session_id() -> str:
    """A fresh session id: 256 random bits, never derived from anything else."""
    return secrets.token_urlsafe(_ID_BYTES)


def is_session_id(text: str) -> bool:
    """``text`` has the shape of a session id (anything else is refused unlooked-up)."""
    return _SESSION_ID.fullmatch(text) is not None


def session_digest(session_id: str) -> str:
    """What the Core DB keeps of a session id. A plain SHA-256 suffices: the id has 256
    random bits, so its digest cannot be reversed by guessing."""
    return hashlib.sha256(b"flwd session\0" + session_id.encode()).hexdigest()


def csrf_token(key: bytes, session_id: str) -> str:
    """The session's CSRF token: an HMAC of its id under the install's key (so the
    server recomputes it instead of storing it, and it tells nothing of the id)."""
    return hmac.new(key, b"flwd csrf\0" + session_id.encode(), hashlib.sha256).hexdigest()


def csrf_matches(sent: str | None, expected: str) -> bool:
    """The ``X-CSRF-Token`` sent equals the session's (in constant time)."""
    return sent is not None and hmac.compare_digest(sent.encode(), expected.encode())


def session_cookies(header: str | None) -> list[str]:
    """The session cookie values of a ``Cookie`` header, the ``__Host-`` ones first,
    at most :data:`MAX_COOKIES`; malformed pairs are skipped, values are not checked."""
    if not header:
        return []
    secure: list[str] = []
    plain: list[str] = []
    for pair in header.split(";"):
        name, equals, value = pair.partition("=")
        name = name.strip()
        if not equals or name not in (COOKIE, SECURE_COOKIE):
            continue
        (secure if name == SECURE_COOKIE else plain).append(value.strip().strip('"'))
    return (secure + plain)[:MAX_COOKIES]


def cookie_name(secure: bool) -> str:
    return SECURE_COOKIE if secure else COOKIE


def over_tls(scheme: str, origin: str | None) -> bool:
    """The browser reached the server over TLS: the request's own scheme, or — behind a
    proxy that ends TLS — the page's origin (what decides ``Secure`` on the cookie)."""
    return scheme in ("https", "wss") or (origin or "").lower().startswith("https://")


def _authority(origin: str) -> str | None:
    """``host[:port]`` of an ``Origin`` (lowercased, its scheme's default port left
    out); None for anything that is not ``http(s)://host[:port]``."""
    scheme, separator, rest = origin.strip().lower().partition("://")
    if not separator or scheme not in _DEFAULT_PORTS or not rest or "/" in rest or "@" in rest:
        return None
    name = host_name(rest)
    if name is None:
        return None
    port = rest[len(name):].removeprefix(":")
    return name if port in ("", _DEFAULT_PORTS[scheme]) else f"{name}:{port}"


def cross_site(origin: str | None, fetch_site: str | None, host: str | None) -> str | None:
    """Why a request must be refused as coming from another site, or None.

    ``Origin`` is compared with ``Host`` by host and port, not scheme: behind a proxy
    that ends TLS the request arrives as http while the page is https. Such a proxy
    must pass the ``Host`` it was asked for (nginx: ``proxy_set_header Host $host``).
    """
    if fetch_site is not None and fetch_site.strip().lower() not in _SITES:
        return f"the browser marked it Sec-Fetch-Site: {fetch_site.strip()[:40]}"
    if origin is None:
        return None
    theirs = _authority(origin)
    ours = host_name(host) if host else None
    if theirs is not None and ours is not None and host is not None:
        port = host.strip().lower()[len(ours):].removeprefix(":")
        if port in _DEFAULT_PORTS.values() and theirs == ours:
            return None  # "example.org:443" and https://example.org are one origin
        if theirs == (f"{ours}:{port}" if port else ours):
            return None
    shown = origin.strip()[:80]
    return f"its Origin {shown} is not this server"
