"""A throw-away PostgreSQL cluster for the tests: ``initdb`` + ``pg_ctl`` on a Unix socket.

One cluster per test session (:func:`postgres_cluster`, a session fixture), one fresh
database per test (:meth:`Cluster.fresh_database`): CREATE DATABASE takes a few
milliseconds, a cluster under a second. The cluster listens on a Unix socket in its
own temporary directory only (no TCP port to collide with another session's).

``initdb`` refuses to run as root: as root, the server runs as the ``postgres`` user
(Debian's package makes it) through ``runuser``; as anyone else, directly. Without
PostgreSQL (no ``/usr/lib/postgresql/*/bin/initdb``), the tests that need it are
skipped with the reason; CI installs Debian's ``postgresql`` package (``.ci/run``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

#: The superuser initdb makes (trust authentication over the socket only).
USER = "flwd"
#: The socket's port number: only part of its file name (``.s.PGSQL.5432``) here.
PORT = 5432


def find_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's ``bin`` directory (Debian's layout), or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda path: int(path.parent.parent.name)
                   if path.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


class Cluster:
    """A running throw-away cluster; :meth:`stop` removes everything it made."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="flwd-pg-"))
        self.socket_dir = self.root
        self._as_postgres = os.geteuid() == 0
        self._numbers = itertools.count(1)
        if self._as_postgres:
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.root / "data"), "-A", "trust", "-U", USER,
                  "--no-sync", "-E", "UTF8", "--locale", "C")
        self._run("pg_ctl", "-D", str(self.root / "data"), "-w", "-l", str(self.root / "log"),
                  "-o", f"-k {self.root} -p {PORT} -c listen_addresses='' -c fsync=off "
                        "-c full_page_writes=off -c synchronous_commit=off "
                        "-c max_connections=200", "start")

    def _run(self, tool: str, *args: str) -> None:
        argv = [str(self.bin_dir / tool), *args]
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        # A clean environment: the server outlives the test that started it, and must not
        # look like a process of that test's data dir (tests/conftest.py's leak check).
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                              env=env)
        if done.returncode != 0:
            log = self.root / "log"
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr.strip()}"
                               + (f"\n{log.read_text()}" if log.exists() else ""))

    def dsn(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL of ``database`` over the cluster's socket."""
        return f"postgresql://{USER}@/{database}?host={quote(str(self.socket_dir), safe='')}" \
               f"&port={PORT}"

    def fresh_database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = f"t{next(self._numbers)}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def skip_reason() -> str | None:
    """Why PostgreSQL tests cannot run here (None: they can)."""
    if find_bin_dir() is None:
        return ("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; "
                "Debian: apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    return None


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """One throw-away cluster for the session (skips the test without PostgreSQL)."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    bin_dir = find_bin_dir()
    assert bin_dir is not None
    cluster = Cluster(bin_dir)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_dsn(postgres_cluster: Cluster) -> str:
    """The URL of a fresh, empty database of the session's cluster."""
    return postgres_cluster.fresh_database()
