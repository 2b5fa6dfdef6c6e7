"""Bearer tokens with scopes (sans-IO but for reading and writing the tokens file).

The tokens file stores only SHA-256 digests of tokens, each with a name and its
scopes; a token never grants itself scopes. Comparison is constant-time over
every entry, so timing does not tell which entry matched.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from flwd.errors import UsageError

SCOPES: tuple[str, ...] = (
    "jobs:read", "jobs:write", "runs:read", "runs:write", "events:read",
    "sources:read", "sources:write", "metrics:read",
)
DEV_TOKEN = "dev-token"
TOKEN_PREFIX = "flwd_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a token's name (never the token) and its scopes."""

    name: str
    scopes: frozenset[str]

    def missing(self, required: Iterable[str]) -> list[str]:
        return [scope for scope in required if scope not in self.scopes]


@dataclass(frozen=True, slots=True)
class TokenEntry:
    name: str
    sha256: str
    scopes: frozenset[str]


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_scopes(scopes: Sequence[str]) -> list[str]:
    """Validate scope names; raises UsageError naming the bad ones."""
    unknown = [s for s in scopes if s not in SCOPES and s != "*"]
    if unknown:
        raise UsageError(f"unknown scope{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}",
                         hint=f"use any of: {', '.join(SCOPES)} (or * for all)")
    return list(SCOPES) if "*" in scopes else list(dict.fromkeys(scopes))


def load_tokens(path: Path) -> list[TokenEntry]:
    """Read a tokens file; a missing file is an empty list.

    Raises:
        UsageError: the file is not valid JSON of the expected shape.
    """
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read tokens file {path}: {exc}") from exc
    entries = []
    try:
        for index, item in enumerate(raw["tokens"]):
            sha = str(item["sha256"]).lower()
            if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
                raise ValueError(f"tokens[{index}].sha256 is not a SHA-256 hex digest")
            entries.append(TokenEntry(str(item["name"]), sha,
                                      frozenset(check_scopes(list(item["scopes"])))))
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"tokens file {path} is malformed: {exc}",
                         hint="recreate it with 'flwd :tokens create'") from exc
    return entries


def create_token(path: Path, name: str, scopes: Sequence[str]) -> str:
    """Mint a token, store its digest in ``path`` (0600) and return the token (shown once)."""
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise UsageError(f"invalid token name '{name}'", hint="use letters, digits, '-', '_', '.'")
    granted = check_scopes(scopes)
    if not granted:
        raise UsageError("a token needs at least one --scope", hint=f"e.g. --scope {SCOPES[2]}")
    entries = load_tokens(path)
    if any(entry.name == name for entry in entries):
        raise UsageError(f"a token named '{name}' already exists in {path}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    document = {"tokens": [
        {"name": e.name, "sha256": e.sha256, "scopes": sorted(e.scopes)} for e in entries
    ] + [{"name": name, "sha256": digest(token), "scopes": granted,
          "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]}
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(document, f, indent=2)
    os.replace(temporary, path)
    return token


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Principal`.

    In dev mode, ``dev-token`` and a missing token get every scope; any other
    token must still be a configured one.
    """

    def __init__(self, entries: Sequence[TokenEntry], *, dev: bool) -> None:
        self.entries = list(entries)
        self.dev = dev

    def authenticate(self, header: str | None) -> Principal | str:
        """The principal, or the reason (a string) for a 401."""
        if not header:
            if self.dev:
                return Principal("dev", frozenset(SCOPES))
            return "missing bearer token (send 'Authorization: Bearer TOKEN')"
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return "malformed Authorization header (expected 'Bearer TOKEN')"
        if self.dev and hmac.compare_digest(token.encode(), DEV_TOKEN.encode()):
            return Principal("dev", frozenset(SCOPES))
        wanted = digest(token)
        match: TokenEntry | None = None
        for entry in self.entries:
            # Every entry is compared, so the time taken does not reveal which matched.
            if hmac.compare_digest(entry.sha256, wanted):
                match = entry
        if match is None:
            return "unknown or revoked token"
        return Principal(match.name, match.scopes)
