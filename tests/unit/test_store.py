"""Core DB on real SQLite files: migrations, the journal, readers, recovery, broken files."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flwd.engine import recover_interrupted
from flwd.errors import RecordUnstorable, RunNotFound, StorageError
from flwd.events import RUN_FINISH, RUN_START, STEP_LOG, STEP_START, EventRecord, RunRow
from flwd.execute import owner_identity
from flwd.store import (
    RunFilter,
    SqliteStore,
    append_batch,
    connect,
    count_runs,
    db_path,
    event_bounds,
    get_run,
    list_runs,
    open_reader,
    read_events,
)
from flwd.store._schema import SCHEMA_VERSION

T0 = 1_700_000_000.0


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return db_path(tmp_path / "data")


@pytest.fixture
def conn(path: Path) -> Iterator[sqlite3.Connection]:
    connection = connect(path)
    yield connection
    connection.close()


def run_row(run_id: str, *, job_id: str = "demo", status: str = "queued", created: float = T0,
            **kw: Any) -> RunRow:
    return RunRow(id=run_id, job_id=job_id, status=status, created_at=created, **kw)


def event(run_id: str, type_: str = STEP_START, data: dict[str, Any] | None = None, *,
          ts: float = T0) -> EventRecord:
    return EventRecord(run_id=run_id, job_id="demo", type=type_, ts=ts,
                       data=data if data is not None else {"step": "100_a.sh"})


def log_chunk(run_id: str, lines: list[bytes]) -> EventRecord:
    return EventRecord(run_id=run_id, job_id="demo", type=STEP_LOG, ts=T0,
                       data={"step": "100_a.sh", "channel": "stdout"},
                       lines=b"\n".join(lines), n=len(lines))


def all_seqs(conn: sqlite3.Connection) -> list[tuple[int, int]]:
    return conn.execute("SELECT seq, last_seq FROM events ORDER BY seq").fetchall()


def assert_contiguous(rows: list[tuple[int, int]]) -> None:
    expected = 1
    for seq, last in rows:
        assert seq == expected, rows
        assert last >= seq
        expected = last + 1


# -- connect and migrations -------------------------------------------------------------------


def test_connect_creates_a_migrated_private_wal_db(tmp_path, path):
    conn = connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 1
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"runs", "events"} <= tables
    finally:
        conn.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.name == "flwd.db"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_reconnecting_keeps_data_and_does_not_remigrate(path):
    conn = connect(path)
    append_batch(conn, [run_row("run-1")])
    conn.close()
    conn = connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert get_run(conn, "run-1").id == "run-1"
    finally:
        conn.close()


def test_reader_sees_committed_data_and_cannot_write(path, conn):
    append_batch(conn, [run_row("run-1")])
    with open_reader(path) as reader:
        assert get_run(reader, "run-1").status == "queued"
        with pytest.raises(sqlite3.OperationalError):
            reader.execute("DELETE FROM runs")


def test_a_reader_of_a_db_before_triggers_filters_them_as_absent(path, conn):
    """A Core DB of schema 9 (no ``runs.trigger``) read without migrating: its runs were
    started by no trigger, so ``trigger=none`` is every run and ``trigger=hook`` none."""
    append_batch(conn, [run_row("run-1"), run_row("run-2", created=T0 + 1)])
    conn.execute("DROP INDEX runs_by_trigger_key")
    conn.execute("ALTER TABLE runs DROP COLUMN trigger_key")
    conn.execute("ALTER TABLE runs DROP COLUMN trigger")
    conn.execute("PRAGMA user_version = 9")
    with open_reader(path) as reader:
        assert reader.schema_version == 9
        none = list_runs(reader, RunFilter(trigger=("none", None)))
        assert [run.id for run in none] == ["run-2", "run-1"]
        assert list_runs(reader, RunFilter(trigger=("hook", "push"))) == []
        assert count_runs(reader, RunFilter(trigger=("schedule", None))) == 0


def test_reader_of_a_missing_db_is_a_storage_error(tmp_path):
    with pytest.raises(StorageError), open_reader(tmp_path / "nothing" / "flwd.db"):
        pass
    assert not (tmp_path / "nothing").exists()


@pytest.mark.parametrize("readonly", [False, True], ids=["writer", "reader"])
def test_newer_schema_is_refused(path, readonly):
    connect(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.commit()
    raw.close()
    with pytest.raises(StorageError) as info:
        connect(path, readonly=readonly)
    assert f"schema version {SCHEMA_VERSION + 1}" in info.value.detail
    assert info.value.hint
    assert info.value.problem.code == "E_STORAGE"
    # and the writer did not "migrate" it down
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    raw.close()


@pytest.mark.parametrize("readonly", [False, True], ids=["writer", "reader"])
@pytest.mark.parametrize("content", [os.urandom(8192), b"hello", b"SQLite format 3\x00" + b"\xff" * 200],
                         ids=["random", "short", "bad-header"])
def test_corrupt_file_is_a_storage_error(path, content, readonly):
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(StorageError) as info:
        connect(path, readonly=readonly)
    assert str(path) in info.value.detail
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


def test_unusable_data_dir_is_a_storage_error(tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data dir should be")
    with pytest.raises(StorageError):
        connect(db_path(blocker))


# -- append_batch: sequence numbers ---------------------------------------------------------------


def test_seqs_are_contiguous_across_batches_and_chunks(conn):
    first = append_batch(conn, [run_row("run-1"), event("run-1", RUN_START, {}),
                                log_chunk("run-1", [b"a", b"b", b"c"])])
    assert [(e.seq, e.last_seq) for e in first] == [(1, 1), (2, 4)]
    second = append_batch(conn, [log_chunk("run-1", [b"d"]), event("run-1")])
    assert [(e.seq, e.last_seq) for e in second] == [(5, 5), (6, 6)]
    assert all_seqs(conn) == [(1, 1), (2, 4), (5, 5), (6, 6)]


def test_append_returns_only_events_and_sets_their_seq_in_place(conn):
    record = event("run-1")
    committed = append_batch(conn, [run_row("run-1"), record])
    assert committed == [record]
    assert record.seq == 1


def test_empty_batch_is_fine(conn):
    assert append_batch(conn, []) == []
    assert all_seqs(conn) == []


def test_seqs_are_global_across_two_connections(path):
    one, two = connect(path), connect(path)
    try:
        append_batch(one, [run_row("run-a"), run_row("run-b")])
        got = []
        for i in range(5):
            got += append_batch(one, [event("run-a"), log_chunk("run-a", [b"x"] * (i + 1))])
            got += append_batch(two, [log_chunk("run-b", [b"y"] * 3), event("run-b")])
        assert_contiguous(all_seqs(one))
        assert [e.seq for e in got] == sorted(e.seq for e in got)
        assert all_seqs(two)[-1][1] == sum(e.n for e in got)
    finally:
        one.close()
        two.close()


def test_seqs_are_unique_across_processes(path):
    connect(path).close()
    writer = textwrap.dedent("""
        import sys
        from pathlib import Path
        from flwd.events import EventRecord
        from flwd.store import append_batch, connect
        conn = connect(Path(sys.argv[1]))
        for i in range(60):
            append_batch(conn, [EventRecord(sys.argv[2], "demo", "step.log", 0.0,
                                            {"step": "s", "channel": "stdout"},
                                            lines=b"l\\nm", n=2)])
        conn.close()
    """)
    procs = [subprocess.Popen([sys.executable, "-c", writer, str(path), f"run-{i}"])
             for i in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    with open_reader(path) as reader:
        rows = all_seqs(reader)
    assert len(rows) == 180
    assert_contiguous(rows)


def test_failed_batch_keeps_nothing_and_resets_seqs(conn):
    append_batch(conn, [run_row("run-1"), event("run-1")])
    doomed = [event("run-1"), log_chunk("run-1", [b"x", b"y"])]
    with pytest.raises(RecordUnstorable, match="UNIQUE constraint failed"):
        append_batch(conn, [*doomed, run_row("run-1")])  # duplicate run id
    assert [e.seq for e in doomed] == [0, 0]
    assert all_seqs(conn) == [(1, 1)]
    # the connection is still usable and numbering continues without a hole
    assert [e.seq for e in append_batch(conn, doomed)] == [2, 3]


# -- run status from events -----------------------------------------------------------------------


def test_run_start_and_finish_update_the_run(conn):
    append_batch(conn, [run_row("run-1")])
    append_batch(conn, [event("run-1", RUN_START, {}, ts=T0 + 1)])
    run = get_run(conn, "run-1")
    assert (run.status, run.started_at, run.finished_at) == ("running", T0 + 1, None)
    append_batch(conn, [event("run-1", RUN_FINISH,
                              {"status": "failed", "exit_code": 3, "error": "boom"}, ts=T0 + 2)])
    run = get_run(conn, "run-1")
    assert (run.status, run.finished_at, run.exit_code, run.error) == ("failed", T0 + 2, 3, "boom")


def test_run_row_and_its_events_in_one_batch(conn):
    append_batch(conn, [run_row("run-1"), event("run-1", RUN_START, {}),
                        event("run-1", RUN_FINISH, {"status": "completed", "exit_code": 0})])
    assert get_run(conn, "run-1").status == "completed"


@pytest.mark.parametrize("terminal", ["completed", "failed", "canceled", "interrupted"])
def test_terminal_status_is_sticky(conn, terminal):
    append_batch(conn, [run_row("run-1"), event("run-1", RUN_START, {}),
                        event("run-1", RUN_FINISH, {"status": terminal, "exit_code": 7})])
    append_batch(conn, [event("run-1", RUN_START, {}, ts=T0 + 5),
                        event("run-1", RUN_FINISH, {"status": "completed", "exit_code": 0},
                              ts=T0 + 6)])
    run = get_run(conn, "run-1")
    assert (run.status, run.exit_code, run.finished_at) == (terminal, 7, T0)


def test_run_row_round_trips(conn):
    row = run_row("run-1", status="running", started_at=T0 + 1, profile="permissive",
                  args={"name": "alice", "tags": ["a", "b"], "secret_token": "[secret]"},
                  plan={"steps": [{"id": "100_a.sh"}]}, provenance={"source": {"ref": "x"}},
                  owner_pid=123, owner_start=456, owner_host="box")
    append_batch(conn, [row])
    assert get_run(conn, "run-1") == row


# -- reading events -------------------------------------------------------------------------------


@pytest.fixture
def journal(conn: sqlite3.Connection) -> sqlite3.Connection:
    append_batch(conn, [run_row("run-a"), run_row("run-b", created=T0 + 1)])
    append_batch(conn, [event("run-a", RUN_START, {}),                      # 1
                        log_chunk("run-a", [b"l2", b"l3", b"l4", b"l5"]),  # 2..5
                        event("run-b", RUN_START, {}),                      # 6
                        log_chunk("run-b", [b"b7", b"b8"]),                # 7..8
                        event("run-a", RUN_FINISH, {"status": "completed", "exit_code": 0})])  # 9
    return conn


def seqs(records: list[EventRecord], after: int = 0) -> list[int]:
    return [e["seq"] for r in records for e in r.iter_events(after)]


def test_read_events_of_one_run(journal):
    records = read_events(journal, "run-a")
    assert [(r.seq, r.last_seq) for r in records] == [(1, 1), (2, 5), (9, 9)]
    assert records[1].line_list() == [b"l2", b"l3", b"l4", b"l5"]
    assert records[1].data == {"step": "100_a.sh", "channel": "stdout"}
    assert records[2].data == {"status": "completed", "exit_code": 0}
    assert seqs(records) == [1, 2, 3, 4, 5, 9]


@pytest.mark.parametrize(("after", "expected"),
                         [(0, [1, 2, 3, 4, 5, 9]), (1, [2, 3, 4, 5, 9]), (3, [4, 5, 9]),
                          (4, [5, 9]), (5, [9]), (8, [9]), (9, [])])
def test_read_events_after_including_a_straddling_chunk(journal, after, expected):
    records = read_events(journal, "run-a", after=after)
    if 2 <= after < 5:
        assert records[0].seq == 2  # the straddling chunk comes back whole
    assert seqs(records, after) == expected


def test_read_events_of_all_runs_and_limit(journal):
    assert seqs(read_events(journal, None)) == list(range(1, 10))
    assert seqs(read_events(journal, None, after=6)) == [7, 8, 9]
    assert [r.seq for r in read_events(journal, None, limit=2)] == [1, 2]
    assert read_events(journal, "run-nope") == []


def test_event_bounds(journal):
    assert event_bounds(journal, "run-a") == (1, 9)
    assert event_bounds(journal, "run-b") == (6, 8)
    assert event_bounds(journal, "run-nope") == (0, 0)


# -- finding runs ----------------------------------------------------------------------------------


@pytest.fixture
def runs(conn: sqlite3.Connection) -> sqlite3.Connection:
    append_batch(conn, [
        run_row("run-01AAAA1", job_id="hello.world", status="completed", created=T0),
        run_row("run-01AAAA2", job_id="hello.world", status="failed", created=T0 + 1),
        run_row("run-01BBBB1", job_id="Backup", status="completed", created=T0 + 2),
        run_row("run-01C%_X", job_id="odd", status="running", created=T0 + 3),
    ])
    return conn


def test_get_run_by_id_prefix_and_last(runs):
    assert get_run(runs, "run-01AAAA2").job_id == "hello.world"
    assert get_run(runs, "run-01B").id == "run-01BBBB1"
    assert get_run(runs, "last").id == "run-01C%_X"


def test_get_run_ambiguous_prefix(runs):
    with pytest.raises(RunNotFound, match="ambiguous") as info:
        get_run(runs, "run-01AAAA")
    assert info.value.hint
    assert info.value.problem.code == "run.not.found"


@pytest.mark.parametrize("ref", ["run-nope", "run", "run-01D", ""])
def test_get_run_not_found(runs, ref):
    with pytest.raises(RunNotFound, match="no run"):
        get_run(runs, ref)


def test_prefix_wildcards_are_literal(runs):
    # As LIKE wildcards, "_" and "%" would make these name run-01BBBB1 uniquely.
    with pytest.raises(RunNotFound):
        get_run(runs, "run-01_BBB")
    with pytest.raises(RunNotFound):
        get_run(runs, "run-01B%")
    assert get_run(runs, "run-01C%").id == "run-01C%_X"
    assert get_run(runs, "run-01C%_").id == "run-01C%_X"


def test_short_prefixes_are_not_searched(conn):
    append_batch(conn, [run_row("abcdef")])
    with pytest.raises(RunNotFound):
        get_run(conn, "abc")
    assert get_run(conn, "abcd").id == "abcdef"


def test_last_of_an_empty_db(conn):
    with pytest.raises(RunNotFound):
        get_run(conn, "last")


def test_list_runs_newest_first_with_filters(runs):
    assert [r.id for r in list_runs(runs)] == ["run-01C%_X", "run-01BBBB1", "run-01AAAA2",
                                               "run-01AAAA1"]
    def ids(query: RunFilter) -> list[str]:
        return [r.id for r in list_runs(runs, query)]

    assert ids(RunFilter(job_id="HELLO.world")) == ["run-01AAAA2", "run-01AAAA1"]
    assert ids(RunFilter(job_id="backup")) == ["run-01BBBB1"]
    assert ids(RunFilter(statuses=("completed",))) == ["run-01BBBB1", "run-01AAAA1"]
    assert ids(RunFilter(job_id="hello.world", statuses=("failed",))) == ["run-01AAAA2"]
    assert [r.id for r in list_runs(runs, limit=2, offset=1)] == ["run-01BBBB1", "run-01AAAA2"]
    assert list_runs(runs, RunFilter(job_id="nope")) == []


# -- recovery ----------------------------------------------------------------------------------------


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


def test_recover_marks_runs_of_dead_owners_interrupted(conn, path):
    pid, start, host = owner_identity()
    gone = dead_pid()
    append_batch(conn, [
        run_row("run-dead", status="running", owner_pid=gone, owner_host=host),
        run_row("run-queued-dead", status="queued", owner_pid=gone, owner_host=None),
        run_row("run-reused-pid", status="running", owner_pid=pid, owner_start=(start or 0) + 1,
                owner_host=host),
        run_row("run-mine", status="running", owner_pid=pid, owner_start=start, owner_host=host),
        run_row("run-elsewhere", status="running", owner_pid=gone, owner_host=host + "-other"),
        run_row("run-done", status="completed", owner_pid=gone, owner_host=host),
    ])
    before = all_seqs(conn)
    marked = recover_interrupted(SqliteStore(path))
    assert sorted(marked) == ["run-dead", "run-queued-dead", "run-reused-pid"]
    for run_id in marked:
        run = get_run(conn, run_id)
        assert run.status == "interrupted"
        assert run.finished_at is not None
        (finish,) = read_events(conn, run_id)
        assert finish.type == RUN_FINISH
        assert finish.data["status"] == "interrupted"
        assert "exited before the run finished" in finish.data["error"]
        assert finish.data["finished_at"].endswith("Z")
    assert get_run(conn, "run-mine").status == "running"
    assert get_run(conn, "run-elsewhere").status == "running"
    assert get_run(conn, "run-done").status == "completed"
    assert_contiguous(all_seqs(conn))
    assert len(all_seqs(conn)) == len(before) + 3
    # a second pass finds nothing more to do
    assert recover_interrupted(SqliteStore(path)) == []


def test_recover_with_nothing_unfinished_writes_nothing(conn, path):
    assert recover_interrupted(SqliteStore(path)) == []
    assert all_seqs(conn) == []


def test_owner_identity_is_this_process():
    pid, start, host = owner_identity()
    assert pid == os.getpid()
    assert isinstance(start, int)
    assert host


def test_step_log_data_is_json(journal):
    raw = journal.execute("SELECT data, lines FROM events WHERE seq = 2").fetchone()
    assert json.loads(raw[0]) == {"step": "100_a.sh", "channel": "stdout"}
    assert raw[1] == b"l2\nl3\nl4\nl5"
