"""Which Core DB a location names: a ``postgresql://`` URL, or a SQLite file."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from urllib.parse import urlsplit

from flwd.errors import StorageError, UsageError

from ._sqlite import SqliteStore
from ._typing import Store

#: The schemes of a PostgreSQL Core DB's URL (libpq's).
POSTGRES_SCHEMES = ("postgresql://", "postgres://")

#: One PostgreSQL store per URL in a process: its pool of connections is shared by
#: every caller (the engine, the HTTP layer and recovery each ask for the store).
_servers: dict[str, Store] = {}
_servers_lock = threading.Lock()


def open_store(location: str | Path, *, shared: bool = False) -> Store:
    """The store of ``location`` (nothing is opened until it is used).

    ``postgresql://…`` (or ``postgres://…``): a :class:`~flwd.store.postgres.PostgresStore`
    (psycopg is imported only then; one per URL in a process). ``sqlite:///PATH`` or a plain path: a
    :class:`~flwd.store.SqliteStore` of that file; ``shared``: a SQLite file the workers of
    this host share (``flwd :serve --workers``: a clustered store).

    Raises:
        UsageError: a URL of another kind.
        StorageError: a PostgreSQL URL without psycopg installed.
    """
    text = str(location)
    if text.startswith(POSTGRES_SCHEMES):
        try:
            from .postgres import PostgresStore
        except ModuleNotFoundError as exc:
            if exc.name is None or not exc.name.startswith("psycopg"):
                raise
            raise StorageError("a PostgreSQL Core DB needs psycopg, which is not installed",
                               hint="pip install 'flwd[postgres]'") from None
        with _servers_lock:
            if text not in _servers:
                _servers[text] = PostgresStore(text)
            return _servers[text]
    if text.startswith("sqlite://"):
        text = text.removeprefix("sqlite://")
    elif "://" in text:
        scheme = text.partition("://")[0][:20]
        raise UsageError(f"--db: {scheme}:// is not a Core DB flwd knows",
                         hint="use postgresql://USER@HOST/DATABASE, or the path of a "
                              "SQLite file")
    if not text:
        raise UsageError("--db: no path after sqlite://", hint="use sqlite:///PATH/flwd.db")
    return SqliteStore(Path(text).expanduser().absolute(), clustered=shared)


def names_a_password(location: str) -> bool:
    """The location holds a password (``user:PASSWORD@`` or ``?password=``): it must not be
    given on a command line, where ``ps`` and the shell's history show it."""
    if not location.startswith(POSTGRES_SCHEMES):
        return False
    if re.search(r"[?&]password=", location):
        return True
    try:
        return urlsplit(location).password is not None
    except ValueError:
        return ":" in location.partition("://")[2].rpartition("@")[0]
