"""Bearer tokens with scopes: an ``Authorization`` header → a :class:`Principal` (sans-IO but
for the ``stat`` of the tokens file).

The tokens themselves live in :mod:`flwd.tokens` (the file, its reload on change,
expiry); a token never grants itself scopes.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from flwd.tokens import SCOPES, TokenStore, format_time

from ._browser import SessionGrant

__all__ = ["DEV_TOKEN", "LOCAL_PRINCIPAL", "SCOPES", "AnyScope", "Authenticator", "Principal", "Refusal",
           "Requirement"]

DEV_TOKEN = "dev-token"


@dataclass(frozen=True, slots=True)
class AnyScope:
    """A requirement any one of ``scopes`` meets: a route two scopes may read
    (``GET /health/storage``: the reference's ``jobs:read``, or flwd's ``metrics:read``).
    The first is the one a refusal names."""

    scopes: tuple[str, ...]

    def __str__(self) -> str:
        return " or ".join(self.scopes)


#: What a route needs of a token, one requirement at a time: a scope, or any of several.
Requirement = str | AnyScope


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a token's name (never the token) and its scopes."""

    name: str
    scopes: frozenset[str]
    #: The token's id in the :class:`~flwd.tokens.TokenStore` (None: ``--dev``). What a
    #: long-lived grant keeps to notice a revocation (``TokenStore.active``).
    token_id: str | None = None
    #: The browser session the request came with (None: a bearer token, or ``--dev``).
    session: SessionGrant | None = None

    def missing(self, required: Iterable[Requirement]) -> list[Requirement]:
        """The requirements this principal does not meet, in order."""
        return [need for need in required
                if (self.scopes.isdisjoint(need.scopes) if isinstance(need, AnyScope)
                    else need not in self.scopes)]


#: Who calls through the local Unix socket (``_local_socket``): a process of the OS user
#: owning the data dir, who may do anything flwd does with it.
LOCAL_PRINCIPAL = Principal("local", frozenset(SCOPES))


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is not authenticated: a 401 problem's ``detail``, and the RFC 6750
    ``error`` of its ``WWW-Authenticate`` header (None when no credentials were sent)."""

    detail: str
    error: str | None = None


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Principal`.

    In dev mode, ``dev-token`` and a missing token get every scope; any other
    token must still be a configured one. Tokens are looked up in ``store``, which
    reloads the tokens file when it changes: a revoked token is refused, and a new
    one accepted, from the next request on.
    """

    def __init__(self, store: TokenStore, *, dev: bool) -> None:
        self.store = store
        self.dev = dev

    def authenticate(self, header: str | None) -> Principal | Refusal:
        """The principal, or why the request gets a 401."""
        if not header:
            if self.dev:
                return Principal("dev", frozenset(SCOPES))
            return Refusal("missing bearer token (send 'Authorization: Bearer TOKEN')")
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return Refusal("malformed Authorization header (expected 'Bearer TOKEN')",
                           "invalid_request")
        return self.check_token(token)

    def check_token(self, token: str) -> Principal | Refusal:
        """The principal of a bearer token (from a header, or a login's body)."""
        if self.dev and hmac.compare_digest(token.encode(), DEV_TOKEN.encode()):
            return Principal("dev", frozenset(SCOPES))
        entry = self.store.lookup(token)
        if entry is None:
            return Refusal("unknown or revoked token", "invalid_token")
        if entry.expires_at is not None and entry.expired(self.store.now()):
            return Refusal(f"the token expired at {format_time(entry.expires_at)} "
                           "(mint a new one with 'flwd :tokens create')", "invalid_token")
        return Principal(entry.name, entry.scopes, entry.id)
