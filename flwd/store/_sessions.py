"""Browser sessions in the Core DB: which token a session cookie stands for, and until when.

A row never holds the session id the browser sends, only a digest of it
(``id_hash``, made by the HTTP layer), and never the token: the token's id
(:func:`flwd.tokens.token_id`), which says nothing of the secret. Reading the
file therefore gives no way to act as anyone.

Bounded: a login first deletes every expired session, and a token keeps at
most ``keep`` sessions (its oldest are evicted), so however many logins one
token makes, its rows stay few.

Blocking: call from a worker thread inside trio.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._db import Connection
from ._dialect import Db
from ._kv import _write

#: The version whose migration made the sessions table (an older Core DB has none).
SESSION_SCHEMA = 9


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One browser session: the digest of its id, its token's id, and its lifetime
    (seconds since the epoch)."""

    id_hash: str
    token_id: str
    created_at: float
    expires_at: float

    def expired(self, now: float) -> bool:
        return now >= self.expires_at


def _has_table(conn: Db) -> bool:
    # A reader of a Core DB left by an older flwd does not migrate it.
    return not isinstance(conn, Connection) or conn.schema_version >= SESSION_SCHEMA


def get(conn: Db, id_hash: str) -> SessionRecord | None:
    """The session with this digest, expired or not (the caller judges the time)."""
    if not _has_table(conn):
        return None
    row = conn.execute("SELECT token_id, created_at, expires_at FROM sessions "
                       "WHERE id_hash = ?", (id_hash,)).fetchone()
    return None if row is None else SessionRecord(id_hash, row[0], row[1], row[2])


def create(conn: Db, record: SessionRecord, *, keep: int, now: float
           ) -> list[str]:
    """Store ``record``; delete expired sessions, and the oldest of its token beyond
    ``keep``. Returns the digests of the sessions evicted for the cap (not the expired).

    Raises:
        StorageError: the Core DB cannot be written.
    """
    if keep < 1:
        raise ValueError("a token keeps at least one session")
    with _write(conn):
        conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
        conn.execute("INSERT INTO sessions(id_hash, token_id, created_at, expires_at) "
                     "VALUES (?, ?, ?, ?)", (record.id_hash, record.token_id,
                                             record.created_at, record.expires_at))
        evicted = [row[0] for row in conn.execute(
            "SELECT id_hash FROM sessions WHERE token_id = ? "
            "ORDER BY created_at DESC, rowid DESC LIMIT -1 OFFSET ?", (record.token_id, keep))]
        conn.executemany("DELETE FROM sessions WHERE id_hash = ?",
                         [(digest,) for digest in evicted])
    return evicted


def delete(conn: Db, id_hash: str) -> bool:
    """Remove the session; True when it was there.

    Raises:
        StorageError: the Core DB cannot be written.
    """
    with _write(conn):
        return bool(conn.execute("DELETE FROM sessions WHERE id_hash = ?",
                                 (id_hash,)).rowcount > 0)

