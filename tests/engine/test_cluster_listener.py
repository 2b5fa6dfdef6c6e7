"""Followers of runs of another process, woken by the LISTEN connection (issue 18, item 4).

The bookkeeping (:class:`flwd.engine._wakes.Wakes`) sans-IO; the listener actor
(:mod:`flwd.engine._listener`) against a real PostgreSQL server: a follower whose
polling fallback is an hour away is woken by what another connection commits, and
catches up when the LISTEN connection was dropped (``pg_terminate_backend``) while
events were committed; a cancel request reaches the run it names.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trio

from flwd.engine._listener import APPLICATION_NAME, Listener
from flwd.engine._stream import stream_events
from flwd.engine._wakes import Wakes
from flwd.events import RUN_FINISH, RUN_START, STEP_LOG, EventRecord, RunRow
from flwd.store import CancelRequest

HOUR = 3600.0
#: A bounded wait for what must happen at once (a broken wake-up fails, never hangs).
SOON = 30.0


# -- bookkeeping (sans-IO) ----------------------------------------------------------------------

def test_a_notification_wakes_the_followers_of_its_run_that_lack_its_events() -> None:
    wakes = Wakes()
    with wakes.follow("run-a") as behind, wakes.follow("run-a") as ahead, \
            wakes.follow("run-b") as other:
        behind.arm(10)
        ahead.arm(20)
        other.arm(0)
        wakes.moved("run-a", 15)
        assert behind.woken and not ahead.woken and not other.woken
        assert (wakes.heard, wakes.woken) == (1, 1)
        behind.arm(15)  # read again: the next wake is a new one
        assert not behind.woken
        wakes.moved("run-a", 21)
        assert behind.woken and ahead.woken
    assert wakes.following("run-a") == 0 and wakes.following("run-b") == 0


def test_readers_of_every_run_are_woken_by_every_run() -> None:
    wakes = Wakes()
    with wakes.follow(None) as everything, wakes.follow("run-b") as other:
        everything.arm(10)
        other.arm(0)
        wakes.moved("run-a", 11)
        assert everything.woken and not other.woken
        everything.arm(11)
        wakes.moved("", 12)  # an event of no run (a schedule's skip)
        assert everything.woken


def test_a_wake_between_a_read_and_the_wait_is_kept() -> None:
    wakes = Wakes()
    with wakes.follow("run-a") as follower:
        follower.arm(0)          # about to read
        wakes.moved("run-a", 1)  # committed while the read was under way
        assert follower.woken    # the wait that follows returns at once


def test_a_connection_that_comes_back_wakes_everyone_and_the_state_sets_the_pace() -> None:
    wakes = Wakes(fallback=1.5)
    assert wakes.poll_interval(0.2) == 0.2  # no notifications: the process's own pace
    with wakes.follow("run-a") as a, wakes.follow("run-b") as b:
        a.arm(100)
        b.arm(100)
        wakes.set_connected(True)
        assert a.woken and b.woken
        assert wakes.poll_interval(0.2) == 1.5
        a.arm(100)
        b.arm(100)
        wakes.set_connected(False)  # nothing was lost yet: no need to read
        assert not a.woken and not b.woken and wakes.poll_interval(0.2) == 0.2


# -- the listener against PostgreSQL ------------------------------------------------------------

psycopg = pytest.importorskip("psycopg")


def _event(type_: str, n: int = 1, run_id: str = "run-a", **data: object) -> EventRecord:
    if type_ == STEP_LOG:
        return EventRecord(run_id=run_id, job_id="j", type=type_, ts=1.0,
                           data={"step": "100_a.sh", "channel": "stdout"},
                           lines=b"\n".join(b"line %d" % i for i in range(n)), n=n)
    return EventRecord(run_id=run_id, job_id="j", type=type_, ts=1.0, data=dict(data))


@pytest.fixture
def pg(postgres_dsn: str) -> Iterator[Any]:
    from flwd.store.postgres import PostgresStore

    store = PostgresStore(postgres_dsn)
    store.append([RunRow(id="run-a", job_id="j", status="queued", created_at=1.0)])
    try:
        yield store
    finally:
        store.close()


def _admin(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


def _drop_listener(cluster: str, database: str) -> int:
    """Terminate the LISTEN connections to ``database``; how many there were."""
    return len([row for row in _admin(
        cluster, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                 f"application_name = '{APPLICATION_NAME}' AND datname = '{database}'")
        if row[0]])


class _Cancels:
    def __init__(self) -> None:
        self.live = {"run-a"}
        self.got: list[CancelRequest] = []
        self.came = trio.Event()

    async def cancel(self, request: CancelRequest) -> bool:
        self.got.append(request)
        self.came.set()
        return request.run_id in self.live


@pytest.fixture
async def listening(pg: Any) -> AsyncIterator[tuple[Listener, _Cancels]]:
    wakes = Wakes(fallback=HOUR)  # only a wake-up makes a follower read again in time
    cancels = _Cancels()
    listener = Listener(pg.dsn, pg, wakes, live_runs=lambda: cancels.live,
                        cancel=cancels.cancel, cancel_poll=HOUR)
    async with trio.open_nursery() as nursery:
        await nursery.start(listener.run)
        with trio.fail_after(SOON):
            await wakes.until_connected()
        yield listener, cancels
        nursery.cancel_scope.cancel()


async def _read(stream: Any, until: int) -> list[EventRecord]:
    got: list[EventRecord] = []
    while not got or got[-1].last_seq < until:
        got.extend(await stream.__anext__())
    return got


async def test_a_follower_reads_what_another_process_commits_when_told(
        pg: Any, listening: tuple[Listener, _Cancels]) -> None:
    listener, _ = listening
    wakes = listener.wakes
    got: list[EventRecord] = []
    moved = trio.Event()

    async def follow() -> None:
        nonlocal moved
        async for batch in stream_events(pg, "run-a", wakes=wakes, poll_interval=HOUR):
            got.extend(batch)
            moved.set()
            moved = trio.Event()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follow)
        with trio.fail_after(SOON):
            for events in ([_event(RUN_START)], [_event(STEP_LOG, 50)], [_event(STEP_LOG, 7)],
                           [_event(RUN_FINISH, status="completed")]):
                # Read everything and waiting an hour: only a wake-up brings it more.
                await wakes.until_waiting("run-a")
                woken = wakes.woken
                committed = await trio.to_thread.run_sync(pg.append, events)
                while not got or got[-1].last_seq < committed[-1].last_seq:
                    await moved.wait()
                assert wakes.woken == woken + 1
    seqs = [seq for record in got for seq in range(record.seq, record.last_seq + 1)]
    assert seqs == list(range(1, 60)) and got[-1].type == RUN_FINISH
    assert wakes.following("run-a") == 0


async def test_followers_catch_up_when_the_listen_connection_was_dropped(
        postgres_dsn: str, pg: Any, listening: tuple[Listener, _Cancels]) -> None:
    listener, _ = listening
    wakes = listener.wakes
    database = postgres_dsn.rsplit("/", 1)[1].split("?")[0]
    cluster = postgres_dsn.replace(f"/{database}?", "/postgres?")
    got: list[EventRecord] = []

    async def follow() -> None:
        async for batch in stream_events(pg, "run-a", wakes=wakes, poll_interval=HOUR):
            got.extend(batch)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follow)
        with trio.fail_after(SOON):
            await trio.to_thread.run_sync(pg.append, [_event(RUN_START)])
            await wakes.until_waiting("run-a")  # has seq 1, waits an hour for more
            # Down, and kept down while events commit: nobody announces them.
            await trio.to_thread.run_sync(
                _admin, cluster, f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
            try:
                assert await trio.to_thread.run_sync(_drop_listener, cluster, database) == 1
                await wakes.until_connected(False)
                unannounced = await trio.to_thread.run_sync(pg.append, [
                    _event(STEP_LOG, 200), _event(RUN_FINISH, status="completed")])
                assert len(got) == 1  # still waiting
            finally:
                await trio.to_thread.run_sync(
                    _admin, cluster, f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
            # Back: the follower is woken and reads through run.finish, where it ends.
    assert listener.connects == 2
    seqs = [seq for record in got for seq in range(record.seq, record.last_seq + 1)]
    assert seqs == list(range(1, unannounced[-1].last_seq + 1))
    assert got[-1].type == RUN_FINISH


async def test_a_cancel_request_reaches_the_run_live_here_once(
        pg: Any, listening: tuple[Listener, _Cancels]) -> None:
    _, cancels = listening
    with trio.fail_after(SOON):
        await trio.to_thread.run_sync(lambda: pg.request_cancel(
            "run-a", reason="from A", by="api:alice", force=True))
        await cancels.came.wait()
    assert [(c.run_id, c.reason, c.by, c.force) for c in cancels.got] == [
        ("run-a", "from A", "api:alice", True)]
    assert pg.take_cancels(["run-a"]) == []  # taken: never acted on twice


async def test_a_cancel_request_made_while_the_listener_was_away_is_taken_when_it_is_back(
        postgres_dsn: str, pg: Any) -> None:
    pg.request_cancel("run-a", reason="while away", by="api:bob", force=False)
    wakes = Wakes(fallback=HOUR)
    cancels = _Cancels()
    listener = Listener(pg.dsn, pg, wakes, live_runs=lambda: cancels.live,
                        cancel=cancels.cancel, cancel_poll=HOUR)
    async with trio.open_nursery() as nursery:
        await nursery.start(listener.run)
        with trio.fail_after(SOON):
            await cancels.came.wait()
        nursery.cancel_scope.cancel()
    assert [c.reason for c in cancels.got] == ["while away"]
    assert not math.isnan(cancels.got[0].requested_at)


def test_the_listen_connection_notices_a_silent_peer_by_tcp_keepalives(postgres_dsn: str) -> None:
    # It idles for hours without a query: without keepalives a partition (no FIN, no RST)
    # would leave it waiting forever, and followers on their slow fallback.
    from flwd.store.postgres import KEEPALIVES, Listening

    conn = Listening(postgres_dsn, ["flwd_events"], application_name=APPLICATION_NAME)
    try:
        parameters = conn.conn.raw.info.get_parameters()
    finally:
        conn.close()
    assert {key: parameters.get(key) for key in KEEPALIVES} == {
        key: str(value) for key, value in KEEPALIVES.items()}
