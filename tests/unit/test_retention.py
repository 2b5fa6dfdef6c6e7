"""Retention on a real SQLite file: whole finished runs go, oldest first; live runs never."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from flwd.errors import UsageError
from flwd.events import RUN_FINISH, RUN_START, STEP_LOG, EventRecord, RunRow
from flwd.store import (
    RetentionPolicy,
    append_batch,
    collect,
    connect,
    evicted_through,
    read_events,
    storage_usage,
    was_evicted,
)

DAY = 86400.0
NOW = 1_800_000_000.0


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = connect(tmp_path / "flwd.db")
    yield connection
    connection.close()


def add_run(conn: sqlite3.Connection, run_id: str, *, created: float, finished: bool = True,
            lines: int = 3, width: int = 10) -> None:
    records: list[RunRow | EventRecord] = [
        RunRow(id=run_id, job_id="demo", status="queued", created_at=created),
        EventRecord(run_id=run_id, job_id="demo", type=RUN_START, ts=created,
                    data={"status": "running"}),
        EventRecord(run_id=run_id, job_id="demo", type=STEP_LOG, ts=created,
                    data={"step": "100_a.sh", "channel": "stdout"},
                    # Random text: output is stored compressed, and this must take room.
                    lines=b"\n".join(os.urandom(width // 2).hex().encode()
                                     for _ in range(lines)), n=lines)]
    if finished:
        records.append(EventRecord(run_id=run_id, job_id="demo", type=RUN_FINISH,
                                   ts=created + 1, data={"status": "completed"}))
    append_batch(conn, records)


def run_ids(conn: sqlite3.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT id FROM runs ORDER BY created_at")]


def test_keep_the_newest_runs_and_never_a_live_one(conn: sqlite3.Connection,
                                                   tmp_path: Path) -> None:
    for index in range(6):
        add_run(conn, f"r{index}", created=NOW + index, finished=index != 1)
    (tmp_path / "runs" / "r0").mkdir(parents=True)
    result = collect(conn, RetentionPolicy(retain_runs=2), runs_dir=tmp_path / "runs", now=NOW)
    assert result.evicted == ["r0", "r2", "r3"]
    assert run_ids(conn) == ["r1", "r4", "r5"]  # r1 is still running: kept
    assert not (tmp_path / "runs" / "r0").exists()
    assert conn.execute("SELECT count(*) FROM events WHERE run_id IN ('r0','r2','r3')"
                        ).fetchone()[0] == 0
    assert was_evicted(conn, "r0") and not was_evicted(conn, "r4")
    # Every kept run is whole: all its events are still there.
    kept = [e["type"] for r in read_events(conn, "r4") for e in r.iter_events()]
    assert kept == [RUN_START, STEP_LOG, STEP_LOG, STEP_LOG, RUN_FINISH]


def test_age_limit(conn: sqlite3.Connection) -> None:
    add_run(conn, "old", created=NOW - 10 * DAY)
    add_run(conn, "recent", created=NOW - DAY)
    add_run(conn, "old-live", created=NOW - 10 * DAY, finished=False)
    result = collect(conn, RetentionPolicy(retain_days=7), runs_dir=None, now=NOW)
    assert result.evicted == ["old"]
    assert sorted(run_ids(conn)) == ["old-live", "recent"]


def test_size_limit_evicts_oldest_until_under(conn: sqlite3.Connection) -> None:
    for index in range(40):
        add_run(conn, f"big{index:02d}", created=NOW + index, lines=200, width=500)
    before = storage_usage(conn, Path(conn.execute("PRAGMA database_list").fetchone()[2]))
    limit_mb = before["used_bytes"] / 2 / 1024 / 1024
    result = collect(conn, RetentionPolicy(max_db_mb=limit_mb), runs_dir=None, now=NOW)
    assert result.bytes_after <= limit_mb * 1024 * 1024 < result.bytes_before
    kept = run_ids(conn)
    assert kept == [f"big{index:02d}" for index in range(40 - len(kept), 40)]  # the newest
    assert 0 < len(kept) < 40


def test_evicted_through_is_the_highest_evicted_seq(conn: sqlite3.Connection) -> None:
    add_run(conn, "a", created=NOW)
    add_run(conn, "b", created=NOW + 1)
    top_a = conn.execute("SELECT max(last_seq) FROM events WHERE run_id = 'a'").fetchone()[0]
    assert evicted_through(conn) == 0
    collect(conn, RetentionPolicy(retain_runs=1), runs_dir=None, now=NOW)
    assert evicted_through(conn) == top_a


def test_dry_run_changes_nothing(conn: sqlite3.Connection) -> None:
    for index in range(3):
        add_run(conn, f"r{index}", created=NOW + index)
    result = collect(conn, RetentionPolicy(retain_runs=1), runs_dir=None, dry_run=True)
    assert result.evicted == ["r0", "r1"] and result.dry_run
    assert run_ids(conn) == ["r0", "r1", "r2"]


@pytest.mark.parametrize("kwargs", [{"retain_runs": 0}, {"retain_days": -1},
                                    {"max_db_mb": 0}])
def test_limits_must_be_positive(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError, match="must be positive"):
        RetentionPolicy(**kwargs)  # type: ignore[arg-type]


def test_events_of_no_run_go_with_the_runs_of_their_time(conn: sqlite3.Connection,
                                                         tmp_path: Path) -> None:
    # Schedule skips and refused webhooks are journaled with no run: without this they
    # would be kept for ever, whatever the limits.
    def runless(ts: float) -> None:
        append_batch(conn, [EventRecord(run_id="", job_id="demo", type="schedule.skip", ts=ts,
                                        data={"reason": "overlap"})])

    runless(NOW - 10)
    add_run(conn, "old", created=NOW)
    runless(NOW + 5)
    add_run(conn, "new", created=NOW + 10)
    runless(NOW + 15)
    result = collect(conn, RetentionPolicy(retain_runs=1), runs_dir=tmp_path, now=NOW + 20)
    assert result.evicted == ["old"]
    kept = [row[0] for row in conn.execute("SELECT ts FROM events WHERE run_id = '' ORDER BY ts")]
    assert kept == [NOW + 15], "those older than the oldest run kept are gone"
    # A stream resuming from before them is told its cursor expired.
    newest_gone = conn.execute("SELECT max(seq) FROM events WHERE run_id = 'new'").fetchone()[0]
    assert evicted_through(conn) < newest_gone
    assert evicted_through(conn) >= 1
    # Nothing evicted, nothing of no run touched.
    assert collect(conn, RetentionPolicy(retain_runs=5), runs_dir=tmp_path,
                   now=NOW + 30).events_deleted == 0
