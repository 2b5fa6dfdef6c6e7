"""What the Core DB's SQL says differently on SQLite and on PostgreSQL, in one place.

The store's modules (the journal, the readers, key/value, retention…) are written
once, against :class:`Db` — the part of ``sqlite3.Connection`` they use — in the SQL
both databases take (``?`` and ``:name`` parameters; upserts with
``ON CONFLICT … DO UPDATE``, table-qualified). What cannot be said the same way is a
method of the connection's :class:`Dialect`: :data:`SQLITE` here, the PostgreSQL
one beside its connection (``flwd/store/postgres.py``, imported only when a
``postgresql://`` Core DB is used, so that psycopg costs nothing otherwise).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from flwd.errors import StorageError, StorageFull


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...

    def close(self) -> None: ...


class Db(Protocol):
    """A Core DB connection as the store's modules use it (``sqlite3.Connection``'s face)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Any: ...

    @property
    def in_transaction(self) -> bool: ...


class Dialect:
    """SQLite's words; :class:`~flwd.store.postgres.PostgresDialect` overrides them."""

    name = "sqlite"
    #: The database's own errors (anything else a write raises is the record's doing).
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)
    #: Where the user looks when the database fails (the hint of a StorageError).
    check_hint = "free space in the data dir (--data-dir)"

    def is_record_fault(self, exc: Exception) -> bool:
        """Whether ``exc`` comes from a record's content rather than from the database.

        Anything that is not a database error is the record's doing (an encoding,
        a conversion, a JSON encoding, a record of the wrong shape). Of the
        database's own errors, a broken constraint, a value too big and a value it
        cannot bind are the record's; the rest (full, I/O, locked, closed) are not.
        """
        if not isinstance(exc, sqlite3.Error):
            return True
        if isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError):
            return True
        return (isinstance(exc, sqlite3.InterfaceError | sqlite3.ProgrammingError)
                and str(exc).startswith("Error binding parameter"))

    def is_unique_violation(self, exc: BaseException, column: str) -> bool:
        """``exc`` is a uniqueness constraint on ``column`` refusing a row."""
        return isinstance(exc, sqlite3.IntegrityError) and column in str(exc)

    def is_full(self, exc: BaseException) -> bool:
        # SQLITE_FULL: the disk, or a page limit, has no room left.
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL

    def storage_error(self, exc: Exception, *, hint: str | None = None) -> StorageError:
        """A failed write as the StorageError the caller raises (StorageFull when full)."""
        return (StorageFull if self.is_full(exc) else StorageError)(
            f"cannot write the Core DB: {exc}", hint=hint or f"{self.check_hint}, then retry")

    def used_bytes(self, conn: Db) -> int:
        """What ``--max-db-mb`` is checked against: the bytes of the pages in use (free
        pages are reused before the file grows)."""
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * page_size)

    def after_eviction(self, conn: Db) -> None:
        """Hand back the space evicted runs took, as far as the database does that."""
        # The WAL's pages too (the main file keeps its free pages for reuse).
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def notify(self, conn: Db, channel: str, payloads: Iterable[str]) -> None:
        """Tell the database's listeners ``payloads`` on ``channel`` when the open
        transaction commits (``flwd.store._signals``). SQLite's are the processes of
        this host on its bus (``flwd.store._bus``): a writer's connection keeps the
        notes and sends them at COMMIT."""
        notes: list[tuple[str, str]] | None = getattr(conn, "notes", None)
        if notes is not None:
            notes.extend((channel, payload) for payload in payloads)

    # -- SQL fragments ---------------------------------------------------------
    def fold(self, expression: str) -> str:
        """``expression`` compared without regard to (ASCII) case."""
        return f"{expression} COLLATE NOCASE"

    def unique_nocase(self, column: str) -> str:
        """The conflict target of a column unique without regard to case (SQLite: the
        column, declared ``COLLATE NOCASE``)."""
        return column

    def greatest(self, first: str, second: str) -> str:
        return f"max({first}, {second})"

    def clock(self) -> str:
        """The database server's wall clock, in Unix seconds (leases expire by it, so
        the servers sharing a Core DB need not agree on the time)."""
        return "((julianday('now') - 2440587.5) * 86400.0)"

    def octets(self, text: str) -> str:
        """The length in bytes of a TEXT expression."""
        return f"length(CAST({text} AS BLOB))"

    def json_field(self, column: str, field: str) -> str:
        """The text of a JSON text column's top-level string field (NULL without it)."""
        return f"json_extract({column}, '$.{field}')"

    def arg_matches(self, index: int, secret: str) -> str:
        """The run's argument named ``:name{index}`` (at the JSON path ``:path{index}``)
        is the value ``:t{index}`` (as a number ``:n{index}``), or has an element that
        is, or an entry ``:k{index}`` whose value is ``:e{index}`` (``:en{index}``); a
        ``secret`` never matches (see ``_filter``)."""
        # One element of ``json_each`` (an array's element, an object's entry, or the
        # scalar itself) equals the value written as text ({t}) or as a number ({n}).
        element_is = ("((v.type = 'text' AND v.atom = {t} AND v.atom <> '" + secret + "')"
                      " OR (v.type IN ('integer', 'real') AND v.atom = {n})"
                      " OR (v.type = 'true' AND {t} = 'true')"
                      " OR (v.type = 'false' AND {t} = 'false'))")
        whole = element_is.format(t=f":t{index}", n=f":n{index}")
        pair = element_is.format(t=f":e{index}", n=f":en{index}")
        # An object's entries have text keys, an array's elements integer ones, a
        # scalar none.
        return (f"EXISTS (SELECT 1 FROM json_each(runs.args, :path{index}) AS v WHERE "
                f"CASE WHEN typeof(v.key) = 'text' THEN v.key = :k{index} AND {pair} "
                f"ELSE {whole} END)")


SQLITE = Dialect()


def dialect_of(conn: object) -> Dialect:
    """The dialect of a connection (a plain ``sqlite3.Connection`` is SQLite's)."""
    found = getattr(conn, "dialect", None)
    return found if isinstance(found, Dialect) else SQLITE
