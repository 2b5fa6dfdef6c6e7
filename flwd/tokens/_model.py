"""What a token is: a name, the SHA-256 of the secret, scopes and an optional expiry (sans-IO)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flwd.errors import UsageError

from ._expiry import format_time

SCOPES: tuple[str, ...] = (
    "jobs:read", "jobs:write", "runs:read", "runs:write", "events:read",
    "sources:read", "sources:write", "metrics:read",
    # The Rule-Y KV (GET /kv…; PUT and DELETE /kv/…), named as the reference names them.
    "ruley:read", "ruley:write",
    # POST /hooks/<name> of a hook whose auth lists bearer (flwd.hooks).
    "hooks:trigger",
)
TOKEN_PREFIX = "flwd_"
#: Longest token name; names show in logs and tables.
MAX_NAME = 64


def digest(token: str) -> str:
    """The SHA-256 hex digest stored for ``token`` (the token itself is never stored)."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_id(sha256: str) -> str:
    """A stable id for a stored token, derived one way from its digest.

    It names the token to code that must notice a revocation later (a web session
    records the id, never the token) without repeating the digest anywhere.
    """
    return "tok-" + hashlib.sha256(b"flwd token id\0" + sha256.encode()).hexdigest()[:20]


def _shown(value: str, limit: int = 40) -> str:
    """``value`` for an error message: never longer than ``limit`` characters."""
    return value if len(value) <= limit else value[:limit] + "…"


def check_scopes(scopes: Sequence[str]) -> list[str]:
    """Validate scope names; ``*`` grants all of them.

    Raises:
        UsageError: names the unknown scopes (at most three, each cut short).
    """
    unknown = [s for s in scopes if s not in SCOPES and s != "*"]
    if unknown:
        named = ", ".join(_shown(str(s)) for s in unknown[:3]) + (
            f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        raise UsageError(f"unknown scope{'s' if len(unknown) > 1 else ''} {named}",
                         hint=f"use any of: {', '.join(SCOPES)} (or * for all)")
    return list(SCOPES) if "*" in scopes else list(dict.fromkeys(scopes))


def check_name(name: str) -> str:
    """Validate a token name (it shows in logs, tables and ``revoke NAME``).

    Raises:
        UsageError: empty, too long, or a character outside letters, digits, ``-_.``.
    """
    if (not name or len(name) > MAX_NAME
            or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("-")):
        raise UsageError(f"invalid token name '{_shown(name)}'",
                         hint=f"use 1-{MAX_NAME} letters, digits, '-', '_' or '.', "
                              "not starting with '-'")
    return name


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """One token of the tokens file (the digest of the secret, never the secret)."""

    name: str
    sha256: str
    scopes: frozenset[str]
    #: As stored (display only; older files may lack it).
    created_at: str | None = None
    #: Seconds since the epoch after which the token is refused; None: never.
    expires_at: float | None = None
    #: See :func:`token_id`.
    id: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", token_id(self.sha256))

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def to_json(self, now: float) -> dict[str, Any]:
        """What ``flwd :tokens list --json`` shows: never the digest, never the token."""
        return {
            "name": self.name,
            "scopes": sorted(self.scopes),
            "created_at": self.created_at,
            "expires_at": None if self.expires_at is None else format_time(self.expires_at),
            "expired": self.expired(now),
        }
