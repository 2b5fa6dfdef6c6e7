"""The Core DB side of a cluster: claims, leases, fencing and reaping.

Against a real database of each backend (a throw-away PostgreSQL; a SQLite file, as
the processes sharing one host's Core DB use it), without servers: claims never hand a
run out twice (eight claimers racing), honour a job's ``concurrency`` across replicas and the replicas'
labels; a replica whose lease was reaped cannot write for the run any more (its group
is refused, the others commit), and a reaped run is finished once.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from flwd.errors import LeaseLost
from flwd.events import ClusterRun, EventRecord, now
from flwd.ids import new_run_id
from flwd.store import Fence, SqliteStore, append_groups, cluster
from flwd.store._sql import SqlStore


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    """A migrated store of each backend."""
    if request.param == "sqlite":
        store: SqlStore = SqliteStore(tmp_path / "flwd.db")
        store.migrate()
        yield store
        return
    pytest.importorskip("psycopg")
    from flwd.store.postgres import PostgresStore

    pg_store = PostgresStore(request.getfixturevalue("postgres_dsn"))
    pg_store.migrate()
    try:
        yield pg_store
    finally:
        pg_store.close()


def _queue(store: SqlStore, job_id: str, count: int, *, runs_on: list[str] | None = None,
           concurrency: int | None = None, retries: int = 0, source: str | None = None
           ) -> list[str]:
    runs = [ClusterRun(id=new_run_id(), job_id=job_id, status="queued", created_at=now(),
                       owner_kind="cluster", queue={"job_id": job_id, "args": {},
                                                    "digest": "x", "retries": retries},
                       runs_on=runs_on or [], concurrency=concurrency, job_source=source)
            for _ in range(count)]
    with store.connection() as conn:
        append_groups(conn, [[run] for run in runs])
    return [run.id for run in runs]


def _claim(store: SqlStore, replica: str, free: int, labels: tuple[str, ...] = (),
           sources: tuple[str, ...] = ()) -> list[cluster.Claimed]:
    with store.connection() as conn:
        return cluster.claim(conn, replica_id=replica, labels=labels, sources=sources,
                             free=free, lease=30.0, pid=1, start=None, host="test")


def test_a_source_job_is_claimed_only_by_a_replica_that_has_the_source(db: SqlStore) -> None:
    [tools_run] = _queue(db, "tools.lint", 1, source="Tools")
    [plain_run] = _queue(db, "plain", 1)
    assert [c.run_id for c in _claim(db, "bare", 5, sources=("other",))] == [plain_run]
    assert [c.run_id for c in _claim(db, "with-tools", 5, sources=("x", "tools"))] == [
        tools_run], "source names compare without case"


def test_eight_claimers_racing_never_take_a_run_twice(db: SqlStore) -> None:
    ids = _queue(db, "job", 200)
    taken: list[str] = []
    lock = threading.Lock()
    go = threading.Barrier(8)

    def claimer(index: int) -> None:
        go.wait(30)
        while got := _claim(db, f"replica-{index}", 7):
            with lock:
                taken.extend(item.run_id for item in got)

    threads = [threading.Thread(target=claimer, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert Counter(taken) == Counter(ids)


def test_a_jobs_concurrency_and_labels_hold_across_replicas(db: SqlStore) -> None:
    limited = _queue(db, "Limited", 3, concurrency=1)
    gpu = _queue(db, "gpu", 2, runs_on=["gpu"])
    first = _claim(db, "a", 10)
    assert [item.run_id for item in first] == [limited[0]]  # gpu needs a label a lacks
    assert _claim(db, "b", 10) == []  # the job's one slot is held by a, in the cluster
    assert [item.run_id for item in _claim(db, "c", 10, ("gpu", "linux"))] == gpu
    assert all(item.epoch == 1 for item in first)


def test_a_replica_whose_lease_was_reaped_cannot_write_for_the_run(db: SqlStore) -> None:
    lost, kept = _queue(db, "job", 2)
    claimed = {item.run_id: item.epoch for item in _claim(db, "a", 2)}
    fence = Fence("a")
    fence.epochs.update(claimed)

    def event(run_id: str) -> EventRecord:
        return EventRecord(run_id=run_id, job_id="job", type="step.start", ts=now(),
                           data={"step": "s"})

    with db.connection() as conn:
        results = append_groups(conn, [[event(lost)], [event(kept)]], fence)
        assert all(isinstance(result, list) for result in results)
        # a stopped heartbeating for ``lost``: its lease lapsed, and a reaper took it.
        conn.execute("UPDATE runs SET lease_until = 0 WHERE id = ?", (lost,))
        reaped = cluster.reap(conn, new_id=new_run_id)
        assert [item.run_id for item in reaped] == [lost]
        assert cluster.reap(conn, new_id=new_run_id) == []  # once
        results = append_groups(conn, [[event(lost)], [event(kept)]], fence)
    assert isinstance(results[0], LeaseLost) and isinstance(results[1], list)
    statuses = db.run_statuses([lost, kept])
    assert statuses == {lost: "interrupted", kept: "queued"}
    finishes = [e for e in db.read_events(lost) if e.type == "run.finish"]
    assert len(finishes) == 1 and finishes[0].data["status"] == "interrupted"
    assert [e.type for e in db.read_events(kept)] == ["step.start", "step.start"]


def test_a_reaped_run_of_a_retrying_job_is_queued_again_as_a_new_run(db: SqlStore) -> None:
    (run_id,) = _queue(db, "flaky", 1, retries=1)
    _claim(db, "a", 1)
    with db.connection() as conn:
        conn.execute("UPDATE runs SET lease_until = 0 WHERE id = ?", (run_id,))
        (reaped,) = cluster.reap(conn, new_id=new_run_id)
    assert reaped.retry_id is not None
    retried = db.get_run(reaped.retry_id)
    assert retried.status == "queued" and retried.trigger == {
        "kind": "retry", "of": run_id, "attempt": 1}
    (claimed,) = _claim(db, "b", 5)
    assert claimed.run_id == reaped.retry_id and claimed.queue["attempt"] == 1
    with db.connection() as conn:
        conn.execute("UPDATE runs SET lease_until = 0 WHERE id = ?", (reaped.retry_id,))
        (again,) = cluster.reap(conn, new_id=new_run_id)
    assert again.retry_id is None  # its one retry is spent


def test_heartbeats_renew_only_the_runs_the_replica_still_holds(db: SqlStore) -> None:
    ids = _queue(db, "job", 2)
    claimed = _claim(db, "a", 2)
    replica = f"a-{uuid.uuid4().hex[:6]}"
    with db.connection() as conn:
        cluster.register(conn, replica_id=replica, host="h", pid=1, labels=["x"], capacity=2)
        conn.execute("UPDATE runs SET replica_id = ? WHERE replica_id = 'a'", (replica,))
        held = cluster.heartbeat(conn, replica_id=replica, running=1, queued=0, lease=30.0,
                                 run_ids=[ids[0]])
        assert held == {ids[0]: claimed[0].epoch}
        listed = cluster.replicas(conn, forget_after=60.0)
    assert [(item.id, item.labels, item.running) for item in listed] == [(replica, ["x"], 1)]


def test_a_claim_on_an_empty_queue_takes_no_write_lock(tmp_path: Path) -> None:
    """A poll, or a freed slot, with nothing queued: one read, no BEGIN IMMEDIATE (the
    journals of the other workers would wait for it)."""
    store = SqliteStore(tmp_path / "flwd.db")
    store.migrate()
    with store.connection() as conn:
        said: list[str] = []
        conn.set_trace_callback(said.append)  # type: ignore[attr-defined]
        assert cluster.claim(conn, replica_id="r", labels=(), sources=(), free=4, lease=30.0,
                             pid=1, start=None, host="test") == []
        assert not any(statement.startswith("BEGIN") for statement in said), said
    [queued] = _queue(store, "job", 1)
    assert [item.run_id for item in _claim(store, "r", 4)] == [queued]
