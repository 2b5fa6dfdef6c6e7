"""Poison-record isolation in the Core DB (issue 11 item 1): one transaction per batch,
but a group holding a record SQLite cannot store is left out alone — the others commit
with contiguous sequence numbers. Database failures stay ``StorageError``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flwd.errors import RecordUnstorable, StorageError, StorageFull
from flwd.events import RUN_FINISH, RUN_START, STEP_START, EventRecord, RunRow
from flwd.store import append_groups, connect, db_path, get_run, open_reader


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return db_path(tmp_path / "data")


@pytest.fixture
def conn(path: Path) -> Iterator[sqlite3.Connection]:
    connection = connect(path)
    yield connection
    connection.close()


def event(run_id: str, data: dict[str, Any], type_: str = STEP_START) -> EventRecord:
    return EventRecord(run_id=run_id, job_id="demo", type=type_, ts=1.0, data=data)


def run_row(run_id: str, **kw: Any) -> RunRow:
    return RunRow(id=run_id, job_id="demo", status="queued", created_at=1.0, **kw)


class Opaque:
    """A value of a type neither JSON nor SQLite knows."""


POISONS = {
    "lone surrogate in data": [event("run-a", {"step": "x\udc80"})],
    "lone surrogate in a column": [EventRecord(run_id="run-a", job_id="de\ud800mo", type=STEP_START,
                                               ts=1.0, data={})],
    "integer beyond 64 bits in a column": [run_row("run-x", exit_code=2**63)],
    "integer beyond 64 bits in run.finish": [event("run-a", {"status": "failed",
                                                             "exit_code": -(2**64)}, RUN_FINISH)],
    "a type JSON cannot encode": [event("run-a", {"step": Opaque()})],
    "a value SQLite cannot bind": [event("run-a", {"status": {"a": 1}}, RUN_FINISH)],
    "a record of the wrong shape": [EventRecord(run_id="run-a", job_id="demo", type=RUN_FINISH,
                                                ts=1.0, data=["a", "list"])],  # type: ignore
    "a broken constraint": [run_row("run-a")],  # run-a exists already
    "a good record with a bad one": [event("run-a", {"step": "fine"}),
                                     event("run-a", {"step": "\udc80"})],
}


@pytest.mark.parametrize("poison", POISONS.values(), ids=list(POISONS))
def test_a_poisoned_group_is_refused_alone(conn: sqlite3.Connection, path: Path,
                                           poison: list) -> None:
    append_groups(conn, [[run_row("run-a"), event("run-a", {}, RUN_START)]])
    good_before = [event("run-a", {"step": "one"})]
    good_after = [event("run-a", {"step": "two"}), event("run-a", {"step": "three"})]
    results = append_groups(conn, [good_before, poison, good_after])
    assert results[0] == good_before and results[2] == good_after
    assert isinstance(results[1], RecordUnstorable)
    assert results[1].detail.startswith("the journal cannot store ")
    assert results[1].problem.status == 422
    # Nothing of the refused group, no hole in the numbering, every number reset.
    assert [record.seq for record in [*good_before, *good_after]] == [2, 3, 4]
    assert all(record.seq == 0 for record in poison if isinstance(record, EventRecord))
    rows = conn.execute("SELECT seq, data FROM events ORDER BY seq").fetchall()
    assert [seq for seq, _ in rows] == [1, 2, 3, 4]
    assert "fine" not in str(rows)
    with open_reader(path) as reader:
        assert get_run(reader, "run-a").status == "running"
    # The refusal is text that can itself be stored and shown.
    results[1].one_line().encode()


def test_the_refusal_names_the_record_and_the_fault(conn: sqlite3.Connection) -> None:
    unicode, integer = append_groups(conn, [
        [event("run-a", {"step": "x\udc80y"})], [run_row("run-x", exit_code=2**63)]])
    assert isinstance(unicode, RecordUnstorable) and isinstance(integer, RecordUnstorable)
    assert unicode.detail == ("the journal cannot store a step.start event of run run-a: it "
                              "holds text that is not valid Unicode (\\udc80: surrogates not "
                              "allowed)")
    assert integer.detail == ("the journal cannot store run run-x of job demo: it holds an "
                              "integer beyond the 64-bit range of the Core DB")


def test_a_database_failure_is_still_a_storage_error(tmp_path: Path, path: Path) -> None:
    connect(path).close()
    readonly = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        with pytest.raises(StorageError, match="cannot write the Core DB") as raised:
            append_groups(readonly, [[event("run-a", {})], [event("run-a", {"step": "\udc80"})]])
        assert not isinstance(raised.value, StorageFull)
    finally:
        readonly.close()


def test_a_full_database_is_storage_full_and_anything_else_is_not(conn: sqlite3.Connection
                                                                  ) -> None:
    # The page limit stands for a full disk: SQLite answers both with SQLITE_FULL.
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    flood = EventRecord(run_id="run-a", job_id="demo", type=STEP_START, ts=1.0, data={},
                        lines=b"x" * 200_000, n=1)
    with pytest.raises(StorageFull, match="cannot write the Core DB: database or disk is full"):
        append_groups(conn, [[flood]])
