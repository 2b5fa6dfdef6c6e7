"""The backends the Core DB contract suite runs against (``test_contract.py``).

Each backend is one param of the ``backend`` fixture; the suite itself talks
to a :class:`~flwd.store.Store` only. A new backend (PostgreSQL) adds a class
here with the same four methods and its name to :data:`BACKENDS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import pytest

from flwd.store import SqliteStore, Store

BACKENDS = ["sqlite"]


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


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return SqliteBackend(tmp_path)
    raise AssertionError(f"unknown backend {request.param}")


@pytest.fixture
def store(backend: Backend) -> Store:
    """A store of the backend under test, with no database yet (the first write makes it)."""
    return backend.fresh()
