"""Rule-Y key/value in the Core DB: small values jobs and triggers keep between runs.

Keys and values are bytes; keys sort in byte order (SQLite compares BLOBs with
``memcmp``, PostgreSQL its ``bytea``). Each namespace keeps the sum of ``len(key) + len(value)`` of its
entries in ``kv_usage``, updated in the transaction of every put and delete:
a quota check reads one row instead of summing the namespace, and two
processes putting at once (the server and a job's ``flwd :kv``) both see the
other's write, since each holds the write lock from its read to its commit.

Blocking: call from a worker thread inside trio.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from flwd.errors import KvKeyRequired, KvKeyTooLong, KvQuotaExceeded, KvValueTooLong

from ._db import Connection
from ._dialect import Db, dialect_of
from ._schema import KV_SCHEMA

#: The reference's limits (its §15.4): a key of at most 256 bytes, a value of at most 8 KiB.
MAX_KEY_BYTES = 256
MAX_VALUE_BYTES = 8 * 1024


@dataclass(frozen=True, slots=True)
class KvItem:
    """One stored entry: its key, its value and when it was last put (ms since the epoch)."""

    key: bytes
    value: bytes
    updated_ms: int


def check_key(key: bytes) -> None:
    """Raises KvKeyRequired (empty) or KvKeyTooLong (over :data:`MAX_KEY_BYTES`)."""
    if not key:
        raise KvKeyRequired("the key is empty", hint="name a key after the namespace")
    if len(key) > MAX_KEY_BYTES:
        raise KvKeyTooLong(f"the key is {len(key)} bytes long; at most {MAX_KEY_BYTES} are allowed")


def check_value(value: bytes) -> None:
    """Raises KvValueTooLong (over :data:`MAX_VALUE_BYTES`)."""
    if len(value) > MAX_VALUE_BYTES:
        raise KvValueTooLong(f"the value is {len(value)} bytes long; at most "
                             f"{MAX_VALUE_BYTES} ({MAX_VALUE_BYTES // 1024} KiB) are allowed")


def _has_tables(conn: Db) -> bool:
    # A reader of a Core DB left by an older flwd does not migrate it.
    return not isinstance(conn, Connection) or conn.schema_version >= KV_SCHEMA


def get(conn: Db, namespace: str, key: bytes) -> KvItem | None:
    if not _has_tables(conn):
        return None
    row = conn.execute("SELECT value, updated_ms FROM kv WHERE namespace = ? AND key = ?",
                       (namespace, key)).fetchone()
    return None if row is None else KvItem(key, bytes(row[0]), int(row[1]))


def prefix_end(prefix: bytes) -> bytes | None:
    """The least key above every key that starts with ``prefix`` (None: no such bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def scan(conn: Db, namespace: str, *, prefix: bytes, after: bytes | None,
         limit: int) -> tuple[list[KvItem], bool]:
    """Up to ``limit`` entries whose key starts with ``prefix`` and sorts after ``after``,
    in key order; and whether there are more."""
    if not _has_tables(conn):
        return [], False
    sql = "SELECT key, value, updated_ms FROM kv WHERE namespace = ? AND key >= ?"
    params: list[object] = [namespace, prefix]
    end = prefix_end(prefix)
    if end is not None:
        sql += " AND key < ?"
        params.append(end)
    if after is not None:
        sql += " AND key > ?"
        params.append(after)
    rows = conn.execute(sql + " ORDER BY key LIMIT ?", (*params, limit + 1)).fetchall()
    items = [KvItem(bytes(key), bytes(value), int(ms)) for key, value, ms in rows[:limit]]
    return items, len(rows) > limit


def usage(conn: Db, namespace: str) -> int:
    """Bytes the namespace holds: the sum of its keys' and values' lengths."""
    if not _has_tables(conn):
        return 0
    row = conn.execute("SELECT bytes FROM kv_usage WHERE namespace = ?", (namespace,)).fetchone()
    return 0 if row is None else int(row[0])


def put(conn: Db, namespace: str, key: bytes, value: bytes, *, quota: int,
        now: float | None = None) -> None:
    """Store ``value`` under ``key``, unless the namespace would then hold over ``quota`` bytes.

    Replacing a value counts only the difference; a put that does not grow the
    namespace is always taken (so that a namespace over a quota lowered since
    can still be shrunk).

    Raises:
        KvKeyRequired / KvKeyTooLong / KvValueTooLong: the key or value is out of bounds.
        KvQuotaExceeded: the namespace would hold more than ``quota`` bytes.
        StorageError: the Core DB cannot be written (disk full, I/O error).
    """
    check_key(key)
    check_value(value)
    stamp = round((time.time() if now is None else now) * 1000)
    with _write(conn):
        old = conn.execute("SELECT length(key) + length(value) FROM kv "
                           "WHERE namespace = ? AND key = ?", (namespace, key)).fetchone()
        delta = len(key) + len(value) - (int(old[0]) if old else 0)
        used = usage(conn, namespace)
        if delta > 0 and used + delta > quota:
            raise KvQuotaExceeded(
                f"namespace {namespace} holds {used} of its {quota} bytes: {delta} more "
                "would exceed its quota",
                hint="delete keys of the namespace, or raise its limit with "
                     "'flwd :serve --kv-namespace NAME=LIMIT'")
        conn.execute("INSERT INTO kv(namespace, key, value, updated_ms) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT(namespace, key) DO UPDATE SET value = excluded.value, "
                     "updated_ms = excluded.updated_ms", (namespace, key, value, stamp))
        _add_usage(conn, namespace, delta)


def delete(conn: Db, namespace: str, key: bytes) -> bool:
    """Remove ``key``; True when it was there.

    Raises:
        StorageError: the Core DB cannot be written.
    """
    with _write(conn):
        old = conn.execute("SELECT length(key) + length(value) FROM kv "
                           "WHERE namespace = ? AND key = ?", (namespace, key)).fetchone()
        if old is None:
            return False
        conn.execute("DELETE FROM kv WHERE namespace = ? AND key = ?", (namespace, key))
        _add_usage(conn, namespace, -int(old[0]))
    return True


def _add_usage(conn: Db, namespace: str, delta: int) -> None:
    conn.execute("INSERT INTO kv_usage(namespace, bytes) VALUES (?, ?) ON CONFLICT(namespace) "
                 "DO UPDATE SET bytes = kv_usage.bytes + excluded.bytes", (namespace, delta))


@contextmanager
def _write(conn: Db) -> Iterator[None]:
    """One ``BEGIN IMMEDIATE`` transaction (the Core DB's write lock), committed when the
    block ends, else rolled back; a database failure is a StorageError (the request
    fails, nothing half-written)."""
    dialect = dialect_of(conn)
    try:
        conn.execute("BEGIN IMMEDIATE")
    except dialect.errors as exc:
        raise dialect.storage_error(exc) from exc
    try:
        yield
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:  # SQLite may have rolled back already (a full disk does)
            with suppress(*dialect.errors):  # the error that matters is ``exc``
                conn.execute("ROLLBACK")
        if isinstance(exc, dialect.errors):
            raise dialect.storage_error(exc) from exc
        raise
