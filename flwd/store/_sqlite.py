"""``SqliteStore``: the embedded Core DB (one SQLite file in WAL mode).

Every method opens a short-lived connection of its own (readers read-only, so
they never create nor migrate the file): SQLite connections are thread-affine,
and callers come from trio's worker threads and from the CLI alike. The
journal's writer keeps one connection in one dedicated thread
(:class:`~flwd.store.JournalWriter`). The methods themselves are the SQL stores'
(``_sql``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flwd.errors import StorageError

from . import _retention
from ._db import connect
from ._dialect import SQLITE, Db
from ._filter import RunFilter
from ._read import open_reader
from ._sql import SqlStore
from ._typing import Store
from ._writer import JournalWriter

#: Rewritten whenever a source is saved or deleted, so that caches built from the
#: sources (shell completion's job index) notice with one ``stat``.
SOURCES_MARKER = "sources/.changed"


def sources_marker(data_dir: Path) -> Path:
    """The file a change of the registered sources touches (see :data:`SOURCES_MARKER`)."""
    return data_dir / SOURCES_MARKER


class SqliteStore(SqlStore):
    """The :class:`~flwd.store.Store` of one SQLite file (``<data dir>/flwd.db``)."""

    dialect = SQLITE

    def __init__(self, path: Path, *, clustered: bool = False) -> None:
        self.path = path
        self.location = str(path)
        #: Shared by the workers of one host (``flwd :serve --workers``): see
        #: ``Store.clustered``; they hear each other on its bus (``_bus``).
        self.clustered = clustered

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r}{', clustered=True' if self.clustered else ''})"

    def exists(self) -> bool:
        return self.path.exists()

    def migrate(self) -> None:
        connect(self.path).close()  # a writable connection migrates as it opens

    def open_journal(self) -> JournalWriter:
        return JournalWriter(self.path)

    @contextmanager
    def _writer(self) -> Iterator[Db]:
        conn = connect(self.path)
        try:
            yield conn
        finally:
            conn.close()

    def _reader(self) -> AbstractContextManager[Db]:
        return open_reader(self.path)

    def _query_guard(self, query: RunFilter) -> AbstractContextManager[None]:
        return _json_functions(query)

    def storage_usage(self) -> dict[str, Any]:
        try:
            with open_reader(self.path) as conn:
                return _retention.storage_usage(conn, self.path)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read the Core DB {self.path}: {exc}",
                               hint="check the file and the data dir (--data-dir)") from exc

    def _sources_changed(self) -> None:
        marker = sources_marker(self.path.parent)
        try:
            marker.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            counter = marker.read_text() if marker.exists() else "0"
            marker.write_text(str(int(counter or "0") + 1) if counter.isdigit() else "1")
        except OSError:
            pass  # only a cache hint


@contextmanager
def _json_functions(query: RunFilter) -> Iterator[None]:
    """Argument filters need SQLite's JSON functions (built in since 3.38, an option
    before): without them, a StorageError that says so rather than a raw error."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if query.args and "json_each" in str(exc):
            raise StorageError(f"argument filters need SQLite's JSON functions, which this "
                               f"SQLite {sqlite3.sqlite_version} lacks ({exc})",
                               hint="use a Python whose SQLite is 3.38 or newer, or "
                                    "filter without arg.") from exc
        raise


if TYPE_CHECKING:  # mypy checks that SqliteStore implements the port
    _: Store = SqliteStore(Path())
