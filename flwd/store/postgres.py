"""``PostgresStore``: the Core DB on a PostgreSQL server (``--db postgresql://…``).

Imported only when such a URL is used (``flwd.store.open_store``): psycopg costs
nothing to a flwd on SQLite.

**Driver.** psycopg 3's *sync* API: its async one does not run under trio (psycopg#29)
and asyncpg is asyncio-only. Like SQLite's, every call blocks and is made from a
worker thread (or the CLI). The journal keeps one connection in its own thread
(:class:`PostgresJournal`); the other methods borrow a connection from a small pool
(:class:`_Pool`), one caller at a time per connection.

**The write lock.** What SQLite's ``BEGIN IMMEDIATE`` gives (one writer at a time in
the whole database) is a transaction-scoped advisory lock here, taken by every
writing transaction (``_WRITE_LOCK``). The journal reads the next ``seq`` under it
(``MAX(last_seq) + 1``), so the journal's transactions commit in ``seq`` order
whichever process or machine makes them: a reader following a stream by its cursor
never sees seq 11 committed before seq 10 (which a ``SEQUENCE`` would allow, values
being taken at insert and committed in any order), and two writers never hand out one
number twice. The cost is one journal commit at a time across every writer, which
the journal's batches amortise.

**Secrets.** A URL's password never leaves this module: :attr:`PostgresStore.location`
and every message name the server, port, database and user only. Prefer
``PGPASSWORD`` or ``~/.pgpass`` to a password in the URL (libpq reads both).
"""

from __future__ import annotations

import re
import select
import threading
import weakref
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, urlsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import ConnStatus, TransactionStatus

from flwd.errors import StorageError

from . import _pg_schema
from ._dialect import Db, Dialect
from ._retention import journal_usage
from ._schema import SCHEMA_VERSION
from ._sql import SqlStore
from ._writer import ClosingDb, ThreadedJournal

if TYPE_CHECKING:
    from ._typing import Store

__all__ = ["Listening", "PostgresStore", "describe", "is_postgres_url"]

#: The advisory lock every writing transaction holds (an arbitrary key: "flwd").
_WRITE_LOCK: Final = 0x666C7764
#: Connections kept open for reuse by a store's callers (more are opened on demand
#: and closed when given back).
POOL_SIZE: Final = 8
#: Seconds to wait for the server before saying it cannot be reached.
CONNECT_TIMEOUT: Final = 10
#: Seconds a writer waits for the write lock (SQLite's busy timeout is as long).
LOCK_TIMEOUT = 10.0
#: Seconds a session may sit inside a transaction doing nothing before the server ends it.
IDLE_IN_TRANSACTION = 60.0
_HINT = ("check that the server is up and the URL (--db or FLWD_DB); keep the password in "
         "PGPASSWORD or ~/.pgpass rather than in the URL")


def is_postgres_url(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def describe(dsn: str) -> str:
    """The URL as messages show it: server, port, database and user; never a password."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.Error:
        parts = {}
        try:
            split = urlsplit(dsn)
            parts = {"user": split.username, "host": split.hostname,
                     "port": str(split.port) if split.port else None,
                     "dbname": split.path.lstrip("/") or None}
        except ValueError:
            return "postgresql://(an unreadable URL)"
    user = f"{quote(str(parts['user']), safe='')}@" if parts.get("user") else ""
    host = str(parts.get("host") or "")
    port = f":{parts['port']}" if parts.get("port") else ""
    where = f"{host}{port}" if host and not host.startswith("/") else ""
    socket = f"?host={host}" if host.startswith("/") else ""
    return f"postgresql://{user}{where}/{parts.get('dbname') or ''}{socket}"


def _password(dsn: str) -> str | None:
    try:
        value = conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        try:
            value = urlsplit(dsn).password
        except ValueError:
            value = None
    return str(value) if value else None


def _reason(exc: BaseException, secret: str | None) -> str:
    """The first line of a driver's message, without the password should it quote it."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^(connection failed: |connection is bad: )+", "", text)
    return text.replace(secret, "***") if secret else text


# -- the dialect -----------------------------------------------------------------------------

#: ``?``, ``:name`` and ``%`` outside quoted text (``::`` is a cast, left alone).
_TOKEN = re.compile(r"'(?:[^']|'')*'|::|\?|(?<![\w:]):([A-Za-z_]\w*)|%|\bLIMIT -1\b")


@lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """The shared SQL (sqlite3's ``?`` and ``:name`` parameters) as psycopg takes it."""
    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        if token == "LIMIT -1":  # SQLite's "no limit"
            return "LIMIT ALL"
        if match.group(1):
            return f"%({match.group(1)})s"
        return token
    return _TOKEN.sub(replace, sql)


class PostgresDialect(Dialect):
    name = "postgresql"
    errors: tuple[type[Exception], ...] = (psycopg.Error,)
    check_hint = "check the PostgreSQL server (its log, its free space)"
    def is_record_fault(self, exc: Exception) -> bool:
        if not isinstance(exc, psycopg.Error):
            return True
        if isinstance(exc, psycopg.IntegrityError | psycopg.DataError):
            return True  # class 23 and class 22: the row, not the server
        # A value psycopg cannot adapt is refused before anything is sent.
        return isinstance(exc, psycopg.ProgrammingError) and exc.sqlstate is None

    def is_unique_violation(self, exc: BaseException, column: str) -> bool:
        return isinstance(exc, pg_errors.UniqueViolation) and column in str(exc)

    def is_full(self, exc: BaseException) -> bool:
        return isinstance(exc, pg_errors.DiskFull)

    def fold(self, expression: str) -> str:
        return f"lower({expression})"

    def unique_nocase(self, column: str) -> str:
        return f"(lower({column}))"

    def greatest(self, first: str, second: str) -> str:
        return f"GREATEST({first}, {second})"

    def clock(self) -> str:
        # clock_timestamp(): the time of the statement, not of its transaction's start.
        return "extract(epoch FROM clock_timestamp())::double precision"

    def octets(self, text: str) -> str:
        return f"octet_length({text})"

    def json_field(self, column: str, field: str) -> str:
        return f"({column}::jsonb ->> '{field}')"

    def arg_matches(self, index: int, secret: str) -> str:
        value = f"(runs.args::jsonb -> :name{index})"

        def element_is(t: str, n: str) -> str:
            return (f"((jsonb_typeof(v.value) = 'string' AND v.value #>> '{{}}' = {t}"
                    f" AND v.value #>> '{{}}' <> '{secret}')"
                    f" OR (jsonb_typeof(v.value) = 'number' AND (v.value #>> '{{}}')::numeric"
                    f" = {n}) OR (v.value = 'true'::jsonb AND {t} = 'true')"
                    f" OR (v.value = 'false'::jsonb AND {t} = 'false'))")

        # The scalar itself (no key), an array's elements (no key), an object's entries.
        return (f"EXISTS (SELECT 1 FROM (SELECT NULL::text, {value}"
                f" WHERE jsonb_typeof({value}) NOT IN ('array', 'object')"
                f" UNION ALL SELECT NULL::text, e FROM jsonb_array_elements(CASE WHEN"
                f" jsonb_typeof({value}) = 'array' THEN {value} ELSE '[]'::jsonb END) AS e"
                f" UNION ALL SELECT o.key, o.value FROM jsonb_each(CASE WHEN"
                f" jsonb_typeof({value}) = 'object' THEN {value} ELSE '{{}}'::jsonb END) AS o"
                f") AS v(key, value) WHERE CASE WHEN v.key IS NOT NULL THEN v.key = :k{index}"
                f" AND {element_is(f':e{index}', f':en{index}')}"
                f" ELSE {element_is(f':t{index}', f':n{index}')} END)")

    def used_bytes(self, conn: Db) -> int:
        # The rows' payload as flwd wrote it (JSON and output, before the server's own
        # compression): it falls as soon as runs are evicted, where the files' size
        # waits for VACUUM.
        row = conn.execute(
            "SELECT (SELECT coalesce(sum(octet_length(data) + coalesce(length(lines), 0)), 0)"
            " FROM events) + (SELECT coalesce(sum(octet_length(args) + coalesce(octet_length("
            "plan), 0) + coalesce(octet_length(provenance), 0)), 0) FROM runs)").fetchone()
        return int(row[0])

    def after_eviction(self, conn: Db) -> None:
        pass  # autovacuum hands the space back to the tables

    def notify(self, conn: Db, channel: str, payloads: Iterable[str]) -> None:
        # One statement for the batch's payloads: delivered at commit, one global
        # lock per transaction however many there are (flwd.store._signals).
        values = list(payloads)
        if values:
            conn.execute("SELECT pg_notify(?, payload) FROM unnest(?::text[]) AS payload",
                         (channel, values))


POSTGRES: Final = PostgresDialect()


# -- connections -----------------------------------------------------------------------------

class PgConnection:
    """A psycopg connection with the face of ``sqlite3.Connection`` the store's SQL uses."""

    dialect = POSTGRES

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        if sql == "BEGIN IMMEDIATE":  # SQLite's write lock: see the module doc
            self.raw.execute("BEGIN")
            return self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
        return self.raw.execute(translate(sql), parameters)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Any:
        cursor = self.raw.cursor()
        cursor.executemany(translate(sql), list(parameters))
        return cursor

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    @property
    def usable(self) -> bool:
        return not self.raw.closed and not self.raw.broken and not self.in_transaction

    def close(self) -> None:
        self.raw.close()


#: TCP keepalives of a connection that idles for long (the LISTEN one): a peer gone
#: without a word (a partition, a machine lost) is noticed in ~25 s, not hours.
KEEPALIVES: Final[dict[str, Any]] = {
    "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}


def connect(dsn: str, *, application_name: str = "flwd", idle: bool = False) -> PgConnection:
    """A connection in autocommit (transactions are the SQL's own ``BEGIN``);
    ``application_name`` is what ``pg_stat_activity`` shows of it; ``idle``: it waits
    long without a query (:data:`KEEPALIVES`).

    Raises:
        StorageError: the URL is malformed or the server cannot be reached (one line
            naming the server and database, never the password).
    """
    location = describe(dsn)
    try:
        conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        # The parser may quote the text it refused: only its kind of fault is said.
        kind = "an unknown parameter" if "parameter" in str(exc) else "a malformed part"
        raise StorageError(f"the Core DB URL {location} is not valid: it has {kind}",
                           hint="write it as postgresql://USER@HOST:PORT/DATABASE "
                                "(--db or FLWD_DB)") from None
    try:
        raw = psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                              application_name=application_name,
                              **(KEEPALIVES if idle else {}))
    except psycopg.Error as exc:
        raise StorageError(f"cannot connect to the Core DB {location}: "
                           f"{_reason(exc, _password(dsn))}", hint=_HINT) from None
    try:
        # As SQLite's busy timeout: a writer waits this long for the write lock, then
        # fails (a StorageError) rather than hang behind a writer that does not finish;
        # and a session that stops inside a transaction (a stopped or frozen process)
        # is ended by the server, releasing the lock, after IDLE_IN_TRANSACTION.
        raw.execute(f"SET lock_timeout = {int(LOCK_TIMEOUT * 1000)}")
        raw.execute("SET idle_in_transaction_session_timeout = "
                    f"{int(IDLE_IN_TRANSACTION * 1000)}")
    except psycopg.Error as exc:
        raw.close()
        raise StorageError(f"cannot set up the connection to the Core DB {location}: "
                           f"{_reason(exc, _password(dsn))}", hint=_HINT) from None
    return PgConnection(raw)


class _Pool:
    """Idle connections for a store's callers, each used by one thread at a time."""

    def __init__(self, dsn: str, size: int = POOL_SIZE) -> None:
        self.dsn = dsn
        self.size = size
        self._idle: list[PgConnection] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def borrow(self) -> Iterator[PgConnection]:
        conn = self._take_idle()
        if conn is None:
            conn = connect(self.dsn)
        try:
            yield conn
        except psycopg.OperationalError as exc:
            # The server went away mid-call (restarted, the network): say it as storage.
            if conn.raw.broken or conn.raw.closed:
                raise StorageError(f"lost the connection to the Core DB {describe(self.dsn)}: "
                                   f"{_reason(exc, _password(self.dsn))}", hint=_HINT) from exc
            raise
        finally:
            self._give_back(conn)

    def _take_idle(self) -> PgConnection | None:
        """An idle connection the server has not dropped meanwhile, if there is one."""
        while True:
            with self._lock:
                if not self._idle:
                    return None
                conn = self._idle.pop()
            if not _dropped(conn):
                return conn
            conn.close()

    def _give_back(self, conn: PgConnection) -> None:
        if conn.in_transaction and not conn.raw.closed and not conn.raw.broken:
            try:
                conn.raw.execute("ROLLBACK")  # a caller interrupted inside a transaction
            except psycopg.Error:
                conn.close()
        with self._lock:
            if not self._closed and conn.usable and len(self._idle) < self.size:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _dropped(conn: PgConnection) -> bool:
    """An idle connection has nothing to read: if it has, the server said goodbye (a
    restart, ``pg_terminate_backend``, an idle timeout) or closed it."""
    try:
        readable, _, _ = select.select([conn.raw.fileno()], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return True
    return bool(readable)


class Listening:
    """A connection LISTENing on ``channels`` (flwd/engine/_listener.py reads its socket).

    Opening it blocks (a worker thread); :meth:`received` does not: call it when
    :attr:`socket` is readable.

    Raises:
        StorageError: the server cannot be reached or refuses the LISTEN.
    """

    def __init__(self, dsn: str, channels: Iterable[str], *, application_name: str) -> None:
        self.conn = connect(dsn, application_name=application_name, idle=True)
        try:
            for channel in channels:
                self.conn.raw.execute(f"LISTEN {channel}")
        except psycopg.Error as exc:
            self.conn.close()
            raise StorageError(f"cannot listen to the Core DB {describe(dsn)}: "
                               f"{_reason(exc, _password(dsn))}", hint=_HINT) from None
        self.socket = self.conn.raw.pgconn.socket

    def received(self) -> list[tuple[str, str]] | None:
        """The notifications the server sent, as ``(channel, payload)``; None once the
        connection is lost (the server ended it, a restart, the network)."""
        pgconn = self.conn.raw.pgconn
        try:
            pgconn.consume_input()
        except psycopg.OperationalError:
            return None
        if pgconn.status == ConnStatus.BAD:
            return None
        got = []
        while (notice := pgconn.notifies()) is not None:
            got.append((notice.relname.decode(errors="replace"),
                        notice.extra.decode(errors="replace")))
        return got

    def close(self) -> None:
        self.conn.close()


# -- the schema ------------------------------------------------------------------------------

def schema_version(conn: PgConnection) -> int:
    """The version of the database's schema; 0 without one."""
    # Read from pg_tables with the statement's snapshot (the catalog cache that
    # to_regclass consults may not yet show a table another migrator just committed).
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables WHERE "
                       "schemaname = current_schema() AND tablename = 'schema_version')"
                       ).fetchone()
    if not row[0]:
        return 0
    found = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(found[0] or 0)


def _check(version: int, location: str) -> int:
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"the Core DB {location} has schema version {version}, newer than this flwd "
            f"understands ({SCHEMA_VERSION})",
            hint="upgrade flwd on this machine, or point --db at another database")
    return version


def migrate(conn: PgConnection, location: str) -> int:
    """Create the schema, or bring an older one up to date, in one transaction; the
    version the database was at (0: it had none).

    Raises:
        StorageError: the database cannot be written, or is newer than this flwd.
    """
    if _check(schema_version(conn), location) == SCHEMA_VERSION:
        return SCHEMA_VERSION
    try:
        conn.execute("BEGIN IMMEDIATE")
        # Re-read under the write lock: another process may have migrated meanwhile.
        found = version = _check(schema_version(conn), location)
        if version == 0:
            for statement in _pg_schema.statements(_pg_schema.BASELINE):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version(version) VALUES (?)",
                         (_pg_schema.BASELINE_VERSION,))
            version = _pg_schema.BASELINE_VERSION
        for step in _pg_schema.MIGRATIONS[version - _pg_schema.BASELINE_VERSION:]:
            for statement in _pg_schema.statements(step):
                conn.execute(statement)
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except psycopg.Error as exc:
        if not conn.raw.closed and conn.in_transaction:
            conn.raw.execute("ROLLBACK")
        raise StorageError(f"cannot migrate the Core DB {location}: "
                           f"{_reason(exc, None)}", hint=POSTGRES.check_hint) from exc
    return found


# -- the store -------------------------------------------------------------------------------

class PostgresJournal(ThreadedJournal):
    """The journal of a PostgreSQL Core DB: its own connection, in its own thread.

    A connection the server dropped (a restart, a failover, the network) fails the batch
    that found it broken, as any storage error does; the next batch connects again.
    """

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self.dsn = dsn

    def _connect(self) -> ClosingDb:
        conn = connect(self.dsn)
        try:
            migrate(conn, describe(self.dsn))
        except BaseException:
            conn.close()
            raise
        return conn

    def _usable(self, conn: ClosingDb) -> ClosingDb:
        assert isinstance(conn, PgConnection)
        if not (conn.raw.broken or conn.raw.closed):
            return conn
        conn.close()
        return self._connect()


class PostgresStore(SqlStore):
    """The :class:`~flwd.store.Store` of one PostgreSQL database (a ``postgresql://`` URL).

    Several processes (and machines) may share the database; see the module doc for
    how their writes are ordered. :meth:`close` closes the idle connections (they
    are closed too when the store is collected, or at exit).
    """

    dialect = POSTGRES
    clustered = True

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.location = describe(dsn)
        self._pool = _Pool(dsn)
        self._migrated = False
        self._finalizer = weakref.finalize(self, self._pool.close)

    def __repr__(self) -> str:
        return f"PostgresStore({self.location!r})"

    def close(self) -> None:
        self._finalizer()

    def exists(self) -> bool:
        if self._migrated:
            return True
        with self._pool.borrow() as conn:
            version = _check(schema_version(conn), self.location)
        if version and version < SCHEMA_VERSION:
            raise StorageError(f"the Core DB {self.location} has schema version {version}, "
                               f"older than this flwd's ({SCHEMA_VERSION})",
                               hint="run 'flwd :db migrate --db …' (or start 'flwd :serve', "
                                    "which migrates)")
        self._migrated = version == SCHEMA_VERSION
        return self._migrated

    def migrate(self) -> None:
        with self._pool.borrow() as conn:
            migrate(conn, self.location)
        self._migrated = True

    def open_journal(self) -> PostgresJournal:
        return PostgresJournal(self.dsn)

    @contextmanager
    def _writer(self) -> Iterator[Db]:
        with self._pool.borrow() as conn:
            if not self._migrated:
                migrate(conn, self.location)
                self._migrated = True
            yield conn

    def _reader(self) -> AbstractContextManager[Db]:
        return self._pool.borrow()

    def storage_usage(self) -> dict[str, Any]:
        if not self.exists():
            raise StorageError(f"the Core DB {self.location} has no schema yet",
                               hint="run 'flwd :db migrate', or start 'flwd :serve'")
        with self._pool.borrow() as conn:
            size = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])
            return {"driver": "postgresql",
                    "bytes_used": size,
                    # The server's disk is its operator's: flwd knows no bound to report.
                    "max_bytes": 2 ** 53,
                    "schema_version": schema_version(conn),
                    "db_bytes": size, "wal_bytes": 0,
                    **journal_usage(conn)}


if TYPE_CHECKING:  # mypy checks that PostgresStore implements the port
    _: Store = PostgresStore("")
