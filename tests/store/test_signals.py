"""What the Core DB tells the other processes of a cluster: the journal's notifications
(``flwd.store._signals``) and the cancel requests for a run live elsewhere.

The payloads are checked sans-IO; the cancel requests through the Store port on both
backends; the notifications on a real PostgreSQL server (SQLite has no listeners).
"""

from __future__ import annotations

import select
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from flwd.errors import RecordUnstorable
from flwd.events import RUN_START, STEP_LOG, EventRecord, RunRow
from flwd.store import (
    EVENTS_CHANNEL,
    Store,
    parse_cancel_payload,
    parse_event_payload,
)
from flwd.store._signals import event_payloads, last_seqs

from .conftest import Backend


def _event(run_id: str, type_: str = STEP_LOG, *, seq: int = 0, n: int = 1) -> EventRecord:
    record = EventRecord(run_id=run_id, job_id="j", type=type_, ts=1.0, data={},
                         lines=b"\n".join(b"x" for _ in range(n)) if type_ == STEP_LOG
                         else None, n=n if type_ == STEP_LOG else 1)
    record.seq = seq
    return record


# -- payloads (sans-IO) -------------------------------------------------------------------------

def test_a_batch_is_one_payload_per_run_naming_its_last_seq() -> None:
    batch = [_event("run-a", RUN_START, seq=1), _event("run-b", seq=2, n=3),
             _event("run-a", seq=5, n=2), _event("", "schedule.skip", seq=7)]
    assert last_seqs(batch) == {"run-a": 6, "run-b": 4, "": 7}
    payloads = event_payloads(last_seqs(batch))
    assert sorted(payloads) == [" 7", "run-a 6", "run-b 4"]
    assert sorted(map(parse_event_payload, payloads)) == [("", 7), ("run-a", 6), ("run-b", 4)]


@pytest.mark.parametrize("payload", ["", "run-a", "run-a x", "run-a -1", "7"])
def test_what_is_not_an_event_payload_is_ignored(payload: str) -> None:
    assert parse_event_payload(payload) is None


def test_a_run_id_too_long_for_a_payload_wakes_everyone_instead() -> None:
    assert event_payloads({"r" * 9000: 3}) == [" 3"]


def test_cancel_payloads_are_run_ids() -> None:
    assert parse_cancel_payload("run-01ABC") == "run-01ABC"
    assert parse_cancel_payload("") is None and parse_cancel_payload("a b") is None


# -- cancel requests (the contract, both backends) ----------------------------------------------

def test_a_cancel_request_is_taken_once_by_the_process_that_runs_it(backend: Backend) -> None:
    store: Store = backend.fresh()
    store.append([RunRow(id=run, job_id="j", status="running", created_at=1.0)
                  for run in ("run-a", "run-b")])
    assert store.take_cancels(["run-a", "run-b"]) == []
    store.request_cancel("run-a", reason="stop it", by="api:alice", force=False, now=5.0)
    other = backend.same(store)  # the replica that runs it
    assert other.take_cancels(["run-b"]) == []
    taken = other.take_cancels(["run-a", "run-b"])
    assert [(t.run_id, t.reason, t.by, t.force, t.requested_at) for t in taken] == [
        ("run-a", "stop it", "api:alice", False, 5.0)]
    assert other.take_cancels(["run-a"]) == [] and store.take_cancels(["run-a"]) == []


def test_a_second_request_before_the_first_was_taken_keeps_it_and_may_force_it(
        backend: Backend) -> None:
    store = backend.fresh()
    store.request_cancel("run-a", reason="first", by="api:a", force=False, now=1.0)
    store.request_cancel("run-a", reason="second", by="api:b", force=True, now=2.0)
    store.request_cancel("run-a", reason="third", by="api:c", force=False, now=3.0)
    [taken] = store.take_cancels(["run-a"])
    assert (taken.reason, taken.by, taken.force) == ("first", "api:a", True)


def test_taking_cancels_from_a_store_without_a_database_creates_nothing(
        backend: Backend) -> None:
    store = backend.fresh()
    assert store.take_cancels(["run-a"]) == []
    assert not store.exists()


# -- notifications (PostgreSQL) -----------------------------------------------------------------

psycopg = pytest.importorskip("psycopg")


@pytest.fixture
def listener(postgres_dsn: str) -> Iterator[Any]:
    from flwd.store.postgres import PostgresStore

    PostgresStore(postgres_dsn).migrate()
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"LISTEN {EVENTS_CHANNEL}")
        conn.execute("LISTEN flwd_cancels")
        yield conn


def _received(conn: Any, count: int) -> list[tuple[str, str]]:
    """``count`` notifications (a bounded wait; fewer fails)."""
    got: list[tuple[str, str]] = []
    while len(got) < count:
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 30)
        assert readable, f"only {got} of {count} notifications came"
        conn.pgconn.consume_input()
        while (notice := conn.pgconn.notifies()) is not None:
            got.append((notice.relname.decode(), notice.extra.decode()))
    return got


def _nothing_more(conn: Any) -> bool:
    conn.execute("SELECT 1")  # a round trip: anything sent before it has arrived
    conn.pgconn.consume_input()
    return conn.pgconn.notifies() is None


def test_a_journal_batch_notifies_each_of_its_runs_once_with_its_last_seq(
        postgres_dsn: str, listener: Any) -> None:
    from flwd.store.postgres import PostgresStore

    store = PostgresStore(postgres_dsn)
    sink = store.open_journal()
    sink.start()
    done = threading.Event()
    try:
        sink.submit([[RunRow(id="run-a", job_id="j", status="queued", created_at=1.0),
                      RunRow(id="run-b", job_id="j", status="queued", created_at=1.0)],
                     [_event("run-a", RUN_START), _event("run-a", n=100)],
                     [_event("run-b", RUN_START)], [_event("run-a", n=3)]],
                    lambda _: done.set())
        assert done.wait(30)
    finally:
        sink.close()
        store.close()
    assert sorted(_received(listener, 2)) == [(EVENTS_CHANNEL, "run-a 105"),
                                              (EVENTS_CHANNEL, "run-b 102")]
    assert _nothing_more(listener)


def test_a_batch_that_commits_nothing_notifies_nothing_and_a_cancel_request_notifies(
        postgres_dsn: str, listener: Any) -> None:
    from flwd.store.postgres import PostgresStore

    store = PostgresStore(postgres_dsn)
    try:
        store.append([RunRow(id="run-a", job_id="j", status="queued", created_at=1.0)])
        assert _nothing_more(listener)  # a run row alone has no events to follow
        with pytest.raises(RecordUnstorable):
            store.append([_event("run-a", RUN_START),
                          RunRow(id="run-a", job_id="j", status="queued", created_at=1.0)])
        assert _nothing_more(listener)  # rolled back: never announced
        store.request_cancel("run-a", reason="r", by="b", force=False)
        assert _received(listener, 1) == [("flwd_cancels", "run-a")]
    finally:
        store.close()
