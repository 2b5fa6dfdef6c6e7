"""The notification bus of a SQLite Core DB (flwd/store/_bus.py): what a writer's
transaction notifies reaches every listening process of the host once it committed,
never before and never when it rolled back; sending never blocks, and a dead
listener's socket is cleared away."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from flwd.events import EventRecord
from flwd.store import CANCELS_CHANNEL, EVENTS_CHANNEL, SqliteStore, connect
from flwd.store._bus import MAX_DATAGRAM, SENDER, LocalListening, bus_dir, decode, encode
from flwd.store._dialect import SQLITE


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    made = SqliteStore(tmp_path / "flwd.db")
    made.migrate()
    return made


def _log(run_id: str, ts: float = 1.0) -> EventRecord:
    return EventRecord(run_id=run_id, job_id="j", type="run.log", ts=ts, data={"message": "x"})


def test_notes_survive_the_wire_and_big_batches_are_split() -> None:
    notes = [(EVENTS_CHANNEL, f"run-{index:05d} {index}") for index in range(3000)]
    datagrams = encode(notes)
    assert len(datagrams) > 1 and all(len(d) <= MAX_DATAGRAM for d in datagrams)
    assert [note for d in datagrams for note in decode(d)] == notes
    assert encode([("c", "a\nb"), ("c", "a\tb"), ("c", "ok")]) == [b"c\tok"]
    assert decode(b"garbage\n\tno channel\nc\tp") == [("c", "p")]


def test_a_commit_reaches_every_listener_after_it_committed(store: SqliteStore) -> None:
    first, second = LocalListening(bus_dir(store.path)), LocalListening(bus_dir(store.path))
    try:
        [record] = store.append([_log("r1")])
        expected = [(EVENTS_CHANNEL, f"r1 {record.last_seq}")]
        assert first.received() == expected and second.received() == expected
        assert first.received() == [], "each note once"
        store.request_cancel("r1", reason="stop", by="test", force=False)
        assert first.received() == [(CANCELS_CHANNEL, "r1")]
    finally:
        first.close()
        second.close()
    assert list(bus_dir(store.path).iterdir()) == [], "a closed listener removes its socket"


def test_a_rolled_back_transaction_tells_nobody(store: SqliteStore) -> None:
    listener = LocalListening(bus_dir(store.path))
    conn = connect(store.path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        SQLITE.notify(conn, EVENTS_CHANNEL, ["r9 1"])
        assert listener.received() == [], "nothing before the commit"
        conn.execute("ROLLBACK")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("COMMIT")
        assert listener.received() == [], "the rolled-back note is forgotten"
        conn.execute("BEGIN IMMEDIATE")
        SQLITE.notify(conn, EVENTS_CHANNEL, ["r9 2"])
        conn.execute("COMMIT")
        assert listener.received() == [(EVENTS_CHANNEL, "r9 2")]
    finally:
        conn.close()
        listener.close()


def test_a_dead_listeners_socket_is_cleared_and_others_still_hear(store: SqliteStore
                                                                  ) -> None:
    directory = bus_dir(store.path)
    live = LocalListening(directory)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(directory / "1-dead.sock"))
    dead.close()  # its process died: the file stays, nobody listens
    try:
        store.append([_log("r2")])
        assert [channel for channel, _ in live.received()] == [EVENTS_CHANNEL]
        assert not (directory / "1-dead.sock").exists()
    finally:
        live.close()


def test_a_full_listener_never_blocks_a_writer(store: SqliteStore) -> None:
    listener = LocalListening(bus_dir(store.path))
    try:
        sent = [SENDER.send(str(bus_dir(store.path)), [(EVENTS_CHANNEL, f"r {n}")])
                for n in range(5000)]
        assert sent[0] == 1 and sent[-1] == 0, "dropped once its queue is full"
        assert 0 < len(listener.received()) < 5000
        store.append([_log("r3")])  # and the next commit still reaches it
        assert [payload.split()[0] for _, payload in listener.received()] == ["r3"]
    finally:
        listener.close()


def test_without_listeners_a_commit_sends_nothing(store: SqliteStore) -> None:
    assert not bus_dir(store.path).exists()
    store.append([_log("r4")])
    assert SENDER.send(str(bus_dir(store.path)), [(EVENTS_CHANNEL, "x 1")]) == 0
