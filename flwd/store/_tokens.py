"""API tokens kept in the Core DB: the tokens of a cluster of servers sharing one PostgreSQL.

What the tokens file holds, a row per token: its name, the SHA-256 of the token (never
the token), its scopes (a JSON list), when it was made (display text) and when it
expires (Unix seconds, or NULL). ``flwd.tokens`` turns rows into entries and judges
them; the store only keeps them. A name is unique (the primary key): two ``flwd :tokens
create`` of one name at once make one token, the other is told the name is taken.

Blocking: call from a worker thread inside trio.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ._db import Connection
from ._dialect import Db
from ._schema import CLUSTER_SCHEMA

__all__ = ["TokenRecord"]


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """One token as the Core DB keeps it."""

    name: str
    sha256: str
    scopes: tuple[str, ...]
    created_at: str | None = None
    expires_at: float | None = None


def _has_table(conn: Db) -> bool:
    return not isinstance(conn, Connection) or conn.schema_version >= CLUSTER_SCHEMA


def load(conn: Db) -> list[TokenRecord]:
    """Every token, by name."""
    if not _has_table(conn):
        return []
    rows = conn.execute("SELECT name, sha256, scopes, created_at, expires_at FROM api_tokens "
                        "ORDER BY name").fetchall()
    return [TokenRecord(name, sha, tuple(json.loads(scopes)), created, expires)
            for name, sha, scopes, created, expires in rows]


def add(conn: Db, record: TokenRecord) -> bool:
    """Add ``record``; False (nothing written) if its name or digest is taken."""
    cursor = conn.execute(
        "INSERT INTO api_tokens(name, sha256, scopes, created_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (record.name, record.sha256, json.dumps(list(record.scopes)), record.created_at,
         record.expires_at))
    return bool(cursor.rowcount > 0)


def remove(conn: Db, name: str) -> bool:
    """Remove the token called ``name``; True if there was one."""
    return bool(conn.execute("DELETE FROM api_tokens WHERE name = ?", (name,)).rowcount > 0)
