"""The backends the Core DB contract suite runs against (``test_contract.py``).

Each backend is one param of the ``backend`` fixture; the suite itself talks
to a :class:`~flwd.store.Store` only. A new backend (PostgreSQL) adds a class
here with the same four methods and its name to :data:`BACKENDS`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from flwd.store import SqliteStore, Store
from tests._postgres import Cluster

BACKENDS = ["sqlite", "postgres"]


class Backend(Protocol):
    def fresh(self) -> Store:
        """A store with no database yet (a new one on every call)."""

    def unopenable(self) -> Store:
        """A store whose database cannot be opened for writing."""

    def footprint(self, store: Store) -> list[str]:
        """What the backend holds for ``store`` (for SQLite: the files of its data dir)."""

    def same(self, store: Store) -> Store:
        """Another store of the same database (as another process would open it)."""


class SqliteBackend:
    """One data dir per store in the test's tmp_path: real SQLite files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made = 0

    def fresh(self) -> Store:
        self._made += 1
        return SqliteStore(self.root / f"data-{self._made}" / "flwd.db")

    def unopenable(self) -> Store:
        # Its data dir would have to be where a plain file is.
        blocker = self.root / "not-a-dir"
        blocker.write_text("")
        return SqliteStore(blocker / "flwd.db")

    def footprint(self, store: Store) -> list[str]:
        assert isinstance(store, SqliteStore)
        folder = store.path.parent
        return sorted(path.name for path in folder.iterdir()) if folder.exists() else []

    def same(self, store: Store) -> Store:
        assert isinstance(store, SqliteStore)
        return SqliteStore(store.path)


class PostgresBackend:
    """One fresh database per store in the session's throw-away cluster (tests/_postgres.py)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.made: list[Any] = []

    def _store(self, dsn: str) -> Store:
        from flwd.store.postgres import PostgresStore

        store = PostgresStore(dsn)
        self.made.append(store)
        return store

    def fresh(self) -> Store:
        return self._store(self.cluster.fresh_database())

    def unopenable(self) -> Store:
        # A database the server does not have.
        return self._store(self.cluster.dsn("no_such_database"))

    def footprint(self, store: Store) -> list[str]:
        import psycopg

        with psycopg.connect(store.dsn) as conn:  # type: ignore[attr-defined]
            return sorted(row[0] for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))

    def same(self, store: Store) -> Store:
        return self._store(store.dsn)  # type: ignore[attr-defined]

    def close(self) -> None:
        for store in self.made:
            store.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield SqliteBackend(tmp_path)
        return
    if request.param == "postgres":
        made = PostgresBackend(request.getfixturevalue("postgres_cluster"))
        try:
            yield made
        finally:
            made.close()
        return
    raise AssertionError(f"unknown backend {request.param}")


@pytest.fixture
def store(backend: Backend) -> Store:
    """A store of the backend under test, with no database yet (the first write makes it)."""
    return backend.fresh()
