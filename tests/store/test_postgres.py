"""What the PostgreSQL store adds to the contract (``test_contract.py`` runs on it too).

Several processes — replicas, later — write one database: their events are numbered
without a gap or a duplicate, in commit order. A URL's password never appears in what
the store says. The schema is versioned like SQLite's and migrated in one transaction.
"""

from __future__ import annotations

import select
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from flwd.errors import StorageError
from flwd.events import EventRecord, RunRow
from flwd.store import SCHEMA_VERSION, Store, open_store
from tests._postgres import Cluster
from tests.conftest import wait_until

psycopg = pytest.importorskip("psycopg")

from flwd.store.postgres import PostgresStore  # noqa: E402  (psycopg is there)

REPO = Path(__file__).resolve().parents[2]
SECRET = "pw-7d1c-never-shown"


@pytest.fixture
def pg(postgres_dsn: str) -> Iterator[PostgresStore]:
    store = PostgresStore(postgres_dsn)
    try:
        yield store
    finally:
        store.close()


def test_the_schema_versions_of_both_backends_agree() -> None:
    from flwd.store import _pg_schema

    assert _pg_schema.SCHEMA_VERSION == SCHEMA_VERSION


def test_open_store_picks_the_backend_from_the_location(tmp_path: Path) -> None:
    assert isinstance(open_store("postgresql://u@h/db"), PostgresStore)
    assert isinstance(open_store("postgres://u@h/db"), PostgresStore)
    sqlite = open_store(f"sqlite://{tmp_path}/x.db")
    assert sqlite.location == str(tmp_path / "x.db")
    assert open_store(tmp_path / "y.db").location == str(tmp_path / "y.db")


_WRITER = """
import sys
from flwd.events import EventRecord, RunRow
from flwd.store.postgres import PostgresStore

dsn, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = PostgresStore(dsn)
store.append([RunRow(id=name, job_id="j", status="running", created_at=1.0)])
sink = store.open_journal()
sink.start()
for i in range(count):
    # Half through the journal's thread, half through append: one sequence.
    record = EventRecord(run_id=name, job_id="j", type="step.log", ts=1.0, data={"i": i})
    if i % 2:
        sink.submit([[record]], lambda result: result.unwrap())
    else:
        store.append([record])
sink.close()
store.close()
"""


def test_writers_in_two_processes_share_one_gapless_sequence(postgres_dsn: str,
                                                              pg: PostgresStore) -> None:
    pg.migrate()
    count = 150
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, postgres_dsn, name, str(count)],
                                cwd=REPO, stderr=subprocess.PIPE, text=True)
               for name in ("run-a", "run-b")]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err[-2000:]
    events = pg.read_events(None, limit=10_000)
    assert [event.seq for event in events] == list(range(1, 2 * count + 1))
    for name in ("run-a", "run-b"):
        mine = [event.data["i"] for event in events if event.run_id == name]
        assert sorted(mine) == list(range(count))  # none lost, none twice
        assert [event.data["i"] for event in events if event.run_id == name
                and event.data["i"] % 2 == 0] == list(range(0, count, 2))  # in order


def test_a_reader_following_the_journal_never_skips_a_seq(pg: PostgresStore) -> None:
    # Commits happen in seq order (the write lock): a cursor that saw seq N has seen
    # every seq below it, whatever writes in parallel.
    pg.append([RunRow(id="run-a", job_id="j", status="running", created_at=1.0)])
    stores = [PostgresStore(pg.dsn) for _ in range(3)]
    stop = threading.Event()

    def write(store: Store) -> None:
        while not stop.is_set():
            store.append([EventRecord(run_id="run-a", job_id="j", type="step.log", ts=1.0,
                                      data={})])

    threads = [threading.Thread(target=write, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    try:
        cursor, seen = 0, 0
        while seen < 300:
            page = pg.read_events(None, after=cursor, limit=50)
            for event in page:
                assert event.seq == cursor + 1, (cursor, event.seq)
                cursor = event.seq
            seen = cursor
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for store in stores:
            store.close()


def test_the_journal_connects_again_after_the_server_dropped_its_connection(
        pg: PostgresStore) -> None:
    import queue

    import outcome

    answers: queue.Queue[outcome.Outcome[object]] = queue.Queue()
    pg.append([RunRow(id="run-a", job_id="j", status="running", created_at=1.0)])
    pg.close()  # its pooled connections: only the journal's is left to drop
    sink = pg.open_journal()
    sink.start()

    def commit() -> outcome.Outcome[object]:
        sink.submit([[EventRecord(run_id="run-a", job_id="j", type="step.log", ts=1.0,
                                  data={})]], answers.put)
        return answers.get(timeout=60)

    try:
        assert isinstance(commit(), outcome.Value)
        with psycopg.connect(pg.dsn, autocommit=True) as admin:
            dropped = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                "current_database() AND pid <> pg_backend_pid()").fetchall()
        assert dropped == [(True,)]
        lost = commit()  # the batch that finds the connection gone fails, as storage
        assert isinstance(lost, outcome.Error) and isinstance(lost.error, StorageError)
        assert isinstance(commit(), outcome.Value)  # the next one connects again
    finally:
        sink.close()
    assert [event.seq for event in pg.read_events("run-a")] == [1, 2]


def test_readers_do_not_trip_on_connections_the_server_dropped(pg: PostgresStore) -> None:
    pg.append([RunRow(id="run-a", job_id="j", status="running", created_at=1.0)])
    threads = [threading.Thread(target=pg.list_runs) for _ in range(4)]
    for thread in threads:  # several pooled connections
        thread.start()
    for thread in threads:
        thread.join()
    with psycopg.connect(pg.dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                      "current_database() AND pid <> pg_backend_pid()")
        # Until each is gone: a dropped connection's goodbye reaches it before it closes.
        wait_until(lambda: admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        ).fetchone() == (1,), "the backends to end")
    assert [run.id for run in pg.list_runs()] == ["run-a"]
    assert pg.get_run("run-a").status == "running"


def test_a_writer_stuck_in_a_transaction_neither_hangs_nor_blocks_the_others(
        pg: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from flwd.store import postgres

    pg.migrate()
    monkeypatch.setattr(postgres, "LOCK_TIMEOUT", 0.2)
    monkeypatch.setattr(postgres, "IDLE_IN_TRANSACTION", 1.0)
    stuck = postgres.connect(pg.dsn)  # a process frozen while it holds the write lock
    stuck.execute("BEGIN IMMEDIATE")
    writer = PostgresStore(pg.dsn)
    try:
        with pytest.raises(StorageError, match="lock timeout"):
            writer.append([RunRow(id="run-a", job_id="j", status="queued", created_at=1.0)])
        # The server ends the frozen session, and with it the lock (its goodbye makes the
        # socket readable; reading it here would be activity and keep the session alive).
        wait_until(lambda: select.select([stuck.raw.fileno()], [], [], 0)[0],
                   "the session's end", timeout=30)
        assert [event.seq for event in writer.append(
            [RunRow(id="run-a", job_id="j", status="queued", created_at=1.0),
             EventRecord(run_id="run-a", job_id="j", type="step.log", ts=1.0, data={})])] \
            == [1]
    finally:
        writer.close()
        stuck.close()


def test_stores_migrating_at_once_make_one_schema(pg: PostgresStore) -> None:
    stores = [PostgresStore(pg.dsn) for _ in range(4)]
    errors: list[BaseException] = []

    def migrate(store: PostgresStore) -> None:
        try:
            store.migrate()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert errors == []
    assert pg.exists() and pg.storage_usage()["schema_version"] == SCHEMA_VERSION
    with psycopg.connect(pg.dsn) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [
            (SCHEMA_VERSION,)]


def test_a_database_with_a_newer_schema_is_refused_clearly(pg: PostgresStore) -> None:
    pg.migrate()
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = 999")
    again = PostgresStore(pg.dsn)
    try:
        with pytest.raises(StorageError, match="schema version 999, newer than this flwd"):
            again.list_runs()
        with pytest.raises(StorageError, match="newer"):
            again.append([RunRow(id="run-a", job_id="j", status="queued", created_at=1.0)])
    finally:
        again.close()


def test_reading_a_database_without_the_schema_creates_nothing(pg: PostgresStore) -> None:
    assert pg.list_runs() == [] and pg.last_seq() == 0 and not pg.exists()
    with psycopg.connect(pg.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                            ).fetchone() == (0,)


def _with_password(dsn: str) -> str:
    return dsn.replace("flwd@", f"flwd:{SECRET}@", 1)


def test_an_unreachable_server_is_one_clear_line_without_the_password(
        postgres_cluster: Cluster, tmp_path: Path) -> None:
    dsn = f"postgresql://flwd:{SECRET}@/flwd_db?host={tmp_path}&port=5999"
    store = PostgresStore(dsn)
    assert SECRET not in store.location and SECRET not in repr(store)
    with pytest.raises(StorageError) as caught:
        store.migrate()
    text = f"{caught.value}\n{caught.value.hint}"
    assert SECRET not in text
    assert str(caught.value).count("\n") == 0
    assert "cannot connect to the Core DB postgresql://flwd@/flwd_db" in str(caught.value)
    assert "PGPASSWORD" in str(caught.value.hint)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_missing_database_and_a_bad_password_never_show_the_password(
        postgres_cluster: Cluster) -> None:
    store = PostgresStore(_with_password(postgres_cluster.dsn("no_such_db")))
    with pytest.raises(StorageError, match='database "no_such_db" does not exist') as caught:
        store.list_runs()
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("dsn", [
    f"postgresql://flwd:{SECRET}@host/db?bogus_option=1",
    f"postgresql://flwd:{SECRET}@[::1/db",
    f"postgresql://flwd:{SECRET}@host/db?sslmode",
])
def test_a_malformed_url_is_refused_without_quoting_the_password(dsn: str) -> None:
    store = open_store(dsn)
    with pytest.raises(StorageError) as caught:
        store.migrate()
    assert SECRET not in f"{caught.value} {caught.value.hint} {store.location}"
    assert "postgresql://USER@HOST:PORT/DATABASE" in str(caught.value.hint)
