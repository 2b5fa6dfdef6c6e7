"""The Core DB contract: what every :class:`~flwd.store.Store` backend does, through the port only.

Parametrised over the backends of ``conftest.py`` (SQLite today, on real files
in tmp_path); a second backend passes this same suite. Each test writes what it
reads through the Store and JournalSink Protocols, never through SQL.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import outcome
import pytest

from flwd.errors import (
    IdempotencyKeyTaken,
    KvKeyRequired,
    KvKeyTooLong,
    KvQuotaExceeded,
    KvValueTooLong,
    RecordUnstorable,
    RunNotFound,
    StorageError,
)
from flwd.events import (
    NOTIFY_DELIVERY,
    RUN_FINISH,
    RUN_START,
    STEP_LOG,
    EventRecord,
    IdempotencyRecord,
    RunRow,
)
from flwd.store import (
    SCHEMA_VERSION,
    GroupResult,
    JournalItem,
    RetentionPolicy,
    RunFilter,
    SessionRecord,
    SourceRecord,
    Store,
)

from .conftest import Backend

T0 = 1_700_000_000.0
DAY = 86_400.0
#: A bounded wait for the journal's thread: a broken contract fails, it does not hang.
WAIT = 30.0


# -- records -----------------------------------------------------------------------------------


def run_row(run_id: str, *, created: float = T0, job: str = "demo", status: str = "queued",
            workspace: str | None = None, **fields: Any) -> RunRow:
    return RunRow(id=run_id, job_id=job, status=status, created_at=created,
                  workspace=workspace, **fields)


def event(run_id: str, type_: str = RUN_START, *, ts: float = T0, **data: object) -> EventRecord:
    return EventRecord(run_id=run_id, job_id="demo", type=type_, ts=ts, data=dict(data))


def finish(run_id: str, status: str = "completed", *, ts: float = T0, **data: object
           ) -> EventRecord:
    return event(run_id, RUN_FINISH, ts=ts, status=status, **data)


def chunk(run_id: str, lines: Sequence[bytes]) -> EventRecord:
    """One journal row holding ``len(lines)`` output events."""
    return EventRecord(run_id=run_id, job_id="demo", type=STEP_LOG, ts=T0,
                       data={"step": "100_a.sh", "channel": "stdout"},
                       lines=b"\n".join(lines), n=len(lines))


def seqs(records: Sequence[EventRecord], after: int = 0) -> list[int]:
    """Every event's seq in ``records`` (one per line of a chunk), skipping seq <= after."""
    return [envelope["seq"] for record in records for envelope in record.iter_events(after)]


def finished_run(store: Store, run_id: str, *, created: float, status: str = "completed",
                 finished: float | None = None, lines: int = 0, **fields: Any) -> None:
    """A run journaled from its row to its ``run.finish`` (with ``lines`` of output)."""
    items: list[JournalItem] = [run_row(run_id, created=created, **fields),
                                event(run_id, ts=created)]
    if lines:
        items.append(chunk(run_id, [b"%s line %d" % (run_id.encode(), i) for i in range(lines)]))
    items.append(finish(run_id, status, ts=created if finished is None else finished))
    store.append(items)


# -- the journal's writer ------------------------------------------------------------------------


class Outcomes:
    """Collects what a JournalSink answers, and in which thread."""

    def __init__(self) -> None:
        self.results: list[list[GroupResult]] = []
        self.threads: set[int] = set()
        self.all_done = threading.Event()
        self.expected = 0

    def done(self, result: outcome.Outcome[list[GroupResult]]) -> None:
        self.threads.add(threading.get_ident())
        self.results.append(result.unwrap())
        if len(self.results) == self.expected:
            self.all_done.set()


def journal(store: Store, *batches: Sequence[Sequence[JournalItem]]) -> Outcomes:
    """Commit ``batches`` through the store's JournalSink; what it answered."""
    sink = store.open_journal()
    sink.start()
    answers = Outcomes()
    answers.expected = len(batches)
    try:
        for batch in batches:
            sink.submit(batch, answers.done)
        assert answers.all_done.wait(WAIT)
    finally:
        sink.close()
    return answers


def test_the_journal_commits_batches_in_order_numbering_every_event(store: Store) -> None:
    answers = journal(
        store,
        [[run_row("run-a"), event("run-a")], [chunk("run-a", [b"one", b"two", b"three"])]],
        [[event("run-a", STEP_LOG, step="s", channel="stderr")]],
        [[finish("run-a")]])
    assert answers.threads and threading.get_ident() not in answers.threads  # its own thread
    assert len(answers.threads) == 1
    committed = [[record for record in group if isinstance(record, EventRecord)]
                 for result in answers.results for group in result
                 if not isinstance(group, RecordUnstorable)]
    # Numbered in submission order, a chunk taking one seq per line, no gap.
    assert [[(r.seq, r.n) for r in group] for group in committed] == [
        [(1, 1)], [(2, 3)], [(5, 1)], [(6, 1)]]
    stored = store.read_events(None)
    assert [(r.seq, r.n, r.type) for r in stored] == [
        (1, 1, RUN_START), (2, 3, STEP_LOG), (5, 1, STEP_LOG), (6, 1, RUN_FINISH)]
    assert stored[1].line_list() == [b"one", b"two", b"three"]
    assert seqs(stored) == [1, 2, 3, 4, 5, 6]
    assert store.last_seq() == 6
    assert store.get_run("run-a").status == "completed"


def test_submit_never_blocks_while_a_batch_commits(store: Store) -> None:
    sink = store.open_journal()
    sink.start()
    inside, release = threading.Event(), threading.Event()
    order: list[str] = []
    everything = threading.Event()

    def first(result: outcome.Outcome[list[GroupResult]]) -> None:
        inside.set()
        release.wait(WAIT)  # the writer is busy until the test lets it go
        order.append("first")

    def later(name: str) -> None:
        def done(result: outcome.Outcome[list[GroupResult]]) -> None:
            result.unwrap()
            order.append(name)
            if name == "third":
                everything.set()
        sink.submit([[event("run-a", STEP_LOG)]], done)

    try:
        sink.submit([[run_row("run-a"), event("run-a")]], first)
        assert inside.wait(WAIT)
        later("second")
        later("third")
        # Both submits returned while the writer was still held in the first answer.
        assert order == [] and not release.is_set()
        release.set()
        assert everything.wait(WAIT)
    finally:
        release.set()
        sink.close()
    assert order == ["first", "second", "third"]
    assert seqs(store.read_events("run-a")) == [1, 2, 3]


def test_close_commits_what_was_queued(store: Store) -> None:
    sink = store.open_journal()
    sink.start()
    answered: list[int] = []
    sink.submit([[run_row("run-a")]], lambda result: answered.append(len(result.unwrap())))
    for _ in range(20):
        sink.submit([[event("run-a", STEP_LOG)]],
                    lambda result: answered.append(len(result.unwrap())))
    sink.close()  # no wait before it: close itself commits the queue
    assert answered == [1] * 21
    assert seqs(store.read_events("run-a")) == list(range(1, 21))


def test_a_refused_group_does_not_sink_the_others(store: Store) -> None:
    poison = event("run-a", STEP_LOG, text="\udc80 is no text")
    (result,) = journal(store, [
        [run_row("run-a"), event("run-a")],
        [poison],
        [chunk("run-a", [b"a", b"b"])],
    ]).results
    good, refused, after = result
    assert isinstance(refused, RecordUnstorable)
    assert "run-a" in str(refused)
    assert not isinstance(good, RecordUnstorable) and not isinstance(after, RecordUnstorable)
    assert poison.seq == 0  # not numbered: no hole where it would have been
    assert [(r.seq, r.n) for r in after] == [(2, 2)]
    assert [(r.seq, r.type) for r in store.read_events("run-a")] == [(1, RUN_START), (2, STEP_LOG)]
    assert store.last_seq() == 3


def test_a_refused_append_keeps_nothing(store: Store) -> None:
    store.append([run_row("run-a"), event("run-a")])
    with pytest.raises(RecordUnstorable):
        store.append([event("run-a", STEP_LOG), event("run-a", STEP_LOG, text="\udc80")])
    assert store.last_seq() == 1
    assert [r.seq for r in store.append([event("run-a", STEP_LOG)])] == [2]


def test_releasing_the_reserve_frees_it_once(store: Store) -> None:
    sink = store.open_journal()
    sink.start()
    try:
        first = sink.release_reserve()
        assert isinstance(first, bool)
        assert sink.release_reserve() is False  # nothing left to free
        answers = Outcomes()
        answers.expected = 1
        sink.submit([[run_row("run-a"), event("run-a")]], answers.done)
        assert answers.all_done.wait(WAIT)  # the writer still commits
    finally:
        sink.close()
    assert store.get_run("run-a").status == "running"


def test_the_journal_and_append_share_one_sequence(store: Store) -> None:
    store.append([run_row("run-a"), event("run-a")])
    journal(store, [[chunk("run-a", [b"x"] * 4)]])
    assert [r.seq for r in store.append([finish("run-a")])] == [6]
    assert seqs(store.read_events(None)) == [1, 2, 3, 4, 5, 6]


def test_methods_are_safe_from_several_threads(store: Store) -> None:
    store.append([run_row("run-a"), event("run-a")])
    numbered: dict[int, list[int]] = {}
    failures: list[BaseException] = []
    go = threading.Barrier(4)

    def writer(index: int) -> None:
        try:
            go.wait(WAIT)
            numbered[index] = [store.append([event("run-a", STEP_LOG, i=i)])[0].seq
                               for i in range(25)]
            store.read_events("run-a", limit=10)
            store.list_runs()
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not failures
    assert all(numbers == sorted(numbers) for numbers in numbered.values())
    every = sorted(seq for numbers in numbered.values() for seq in numbers)
    assert every == list(range(2, 102))  # distinct and contiguous across threads
    assert seqs(store.read_events("run-a", limit=1000)) == list(range(1, 102))


def test_a_database_that_cannot_be_opened_is_a_storage_error(backend: Backend) -> None:
    store = backend.unopenable()
    with pytest.raises(StorageError):
        store.migrate()
    with pytest.raises(StorageError):
        store.append([run_row("run-a")])
    with pytest.raises(StorageError):
        store.open_journal().start()


# -- reading never writes --------------------------------------------------------------------------


def test_a_store_without_a_database_reads_as_empty_and_creates_nothing(backend: Backend
                                                                         ) -> None:
    store = backend.fresh()
    assert isinstance(store.location, str) and store.location
    assert not store.exists()
    assert store.list_runs() == [] and store.count_runs() == 0
    with pytest.raises(RunNotFound):
        store.get_run("run-a")
    with pytest.raises(RunNotFound):
        store.get_run("last")
    assert store.run_statuses(["run-a"]) == {}
    assert store.unfinished_runs() == [] and store.terminal_among(["run-a"]) == []
    assert store.read_events(None) == [] and store.read_events("run-a", after=5) == []
    assert store.event_bounds("run-a") == (0, 0)
    assert store.last_seq() == 0
    assert store.find_idempotent("key") is None
    assert store.evicted_through() == 0 and store.was_evicted("run-a") is False
    assert store.load_sources() == []
    assert not store.exists()
    assert backend.footprint(store) == []


def test_migrate_makes_an_empty_database_once(backend: Backend) -> None:
    store = backend.fresh()
    store.migrate()
    assert store.exists()
    store.migrate()  # again: nothing to do
    assert store.list_runs() == [] and store.last_seq() == 0
    assert store.storage_usage()["runs"] == 0


# -- events -------------------------------------------------------------------------------------


@pytest.fixture
def two_runs(store: Store) -> Store:
    """run-a and run-b interleaved: a's seqs 1, 3, 4-8 (a chunk), 11; b's 2, 9, 10."""
    store.append([run_row("run-a"), run_row("run-b", created=T0 + 1)])
    store.append([event("run-a")])
    store.append([event("run-b")])
    store.append([event("run-a", STEP_LOG)])
    store.append([chunk("run-a", [b"l4", b"l5", b"l6", b"l7", b"l8"])])
    store.append([event("run-b", STEP_LOG), finish("run-b")])
    store.append([finish("run-a")])
    return store


def test_reading_events_after_a_cursor_pages_by_rows(two_runs: Store) -> None:
    store = two_runs
    assert [r.seq for r in store.read_events("run-a")] == [1, 3, 4, 11]
    assert [r.seq for r in store.read_events("run-a", after=3, limit=2)] == [4, 11]
    assert [r.seq for r in store.read_events("run-a", after=1, limit=1)] == [3]
    assert [r.seq for r in store.read_events("run-b", after=2)] == [9, 10]
    # The global journal: every run's rows, in seq order.
    assert [r.seq for r in store.read_events(None, after=2, limit=3)] == [3, 4, 9]
    assert [(r.seq, r.run_id) for r in store.read_events(None, after=9)] == [
        (10, "run-b"), (11, "run-a")]
    assert store.read_events("run-a", after=11) == [] and store.read_events(None, after=11) == []
    assert store.read_events("run-c") == []


def test_a_chunk_straddling_the_cursor_is_read_whole(two_runs: Store) -> None:
    for run_id in ("run-a", None):
        (straddling, *rest) = two_runs.read_events(run_id, after=6)
        assert (straddling.seq, straddling.n) == (4, 5)
        assert straddling.line_list() == [b"l4", b"l5", b"l6", b"l7", b"l8"]
        assert seqs([straddling], after=6) == [7, 8]
        assert rest and rest[-1].seq == 11


def test_a_read_stops_at_its_byte_budget_with_at_least_one_row(store: Store) -> None:
    store.append([run_row("run-a")])
    for _ in range(10):
        store.append([chunk("run-a", [b"x" * 40_000])])
    assert [r.seq for r in store.read_events("run-a", max_bytes=64 * 1024)] == [1, 2]
    assert [r.seq for r in store.read_events("run-a", max_bytes=1)] == [1]
    assert [r.seq for r in store.read_events(None, after=8, max_bytes=1)] == [9]
    assert [r.seq for r in store.read_events("run-a", after=3, max_bytes=100_000)] == [4, 5, 6]
    assert len(store.read_events("run-a")) == 10  # no budget: the row limit only
    assert len(store.read_events("run-a", limit=4, max_bytes=10**9)) == 4


def test_event_bounds_and_the_last_seq(two_runs: Store) -> None:
    store = two_runs
    assert store.event_bounds("run-a") == (1, 11)
    assert store.event_bounds("run-b") == (2, 10)
    assert store.event_bounds("run-c") == (0, 0)
    store.append([run_row("run-quiet", created=T0 + 2)])
    assert store.event_bounds("run-quiet") == (0, 0)  # a run row alone holds no event
    assert store.last_seq() == 11
    store.append([chunk("run-b", [b"1", b"2", b"3"])])
    assert store.last_seq() == 14 and store.event_bounds("run-b") == (2, 14)


# -- runs ---------------------------------------------------------------------------------------


def test_a_run_reads_back_as_it_was_journaled(store: Store) -> None:
    row = run_row("run-01HX", profile="strict", args={"name": "x", "n": [1, 2]},
                  plan={"steps": ["a"]}, provenance={"source": "local"}, owner_pid=123,
                  owner_start=456, owner_host="host-a", owner_kind="serve",
                  workspace="/w/one", executor="container", runtime="podman")
    store.append([row])
    assert store.get_run("run-01HX") == row
    store.append([run_row("run-01HY", executor="proc")])
    assert (store.get_run("run-01HY").executor, store.get_run("run-01HY").runtime) == (
        "proc", None)
    assert [run.executor for run in store.list_runs()] == ["proc", "container"]


def test_a_run_is_found_by_id_unique_prefix_or_last(store: Store) -> None:
    store.append([run_row("run-01AAAA1", created=T0, workspace="/w/one"),
                  run_row("run-01AAAA2", created=T0 + 2, workspace="/w/two"),
                  run_row("run-01BBBB1", created=T0 + 1, workspace="/w/one"),
                  run_row("abcd_x1", created=T0 - 2), run_row("abcdZx2", created=T0 - 1)])
    assert store.get_run("run-01BBBB1").id == "run-01BBBB1"
    assert store.get_run("run-01B").id == "run-01BBBB1"
    with pytest.raises(RunNotFound, match="ambiguous"):
        store.get_run("run-01A")
    assert store.get_run("abcd_").id == "abcd_x1"  # the prefix is text, not a pattern
    with pytest.raises(RunNotFound):
        store.get_run("abc")  # too short to be a prefix
    with pytest.raises(RunNotFound):
        store.get_run("run-02")
    assert store.get_run("last").id == "run-01AAAA2"
    assert store.get_run("last", workspace="/w/one").id == "run-01BBBB1"
    with pytest.raises(RunNotFound, match="/w/three"):
        store.get_run("last", workspace="/w/three")


def test_runs_are_listed_newest_first_filtered_and_paged(store: Store) -> None:
    store.append([
        run_row("run-1", created=T0, job="build", workspace="/w/one"),
        run_row("run-2", created=T0 + 1, job="deploy", workspace="/w/one"),
        run_row("run-3", created=T0 + 2, job="build", workspace="/w/two"),
        run_row("run-4", created=T0 + 2, job="build", workspace="/w/one"),  # same time as 3
        run_row("run-5", created=T0 + 3, job="build"),
    ])
    store.append([event("run-2"), event("run-4"), finish("run-4")])

    def ids(runs: list[RunRow]) -> list[str]:
        return [run.id for run in runs]

    assert ids(store.list_runs()) == ["run-5", "run-4", "run-3", "run-2", "run-1"]
    assert ids(store.list_runs(limit=2, offset=1)) == ["run-4", "run-3"]
    assert ids(store.list_runs(offset=4)) == ["run-1"]
    assert ids(store.list_runs(RunFilter(job_id="BUILD"))) == ["run-5", "run-4", "run-3", "run-1"]
    assert ids(store.list_runs(RunFilter(statuses=("queued",)))) == ["run-5", "run-3", "run-1"]
    assert ids(store.list_runs(RunFilter(workspace="/w/one"))) == ["run-4", "run-2", "run-1"]
    assert ids(store.list_runs(RunFilter(job_id="build", statuses=("queued",),
                                         workspace="/w/one"))) == ["run-1"]
    assert store.list_runs(RunFilter(job_id="nope")) == []
    assert store.count_runs() == 5
    assert store.count_runs(RunFilter(job_id="build")) == 4
    assert store.count_runs(RunFilter(statuses=("running",))) == 1
    assert store.count_runs(RunFilter(workspace="/w/two")) == 1
    assert store.count_runs(RunFilter(job_id="build", workspace="/w/one")) == 2
    # Any of several statuses; a time range on created_at: [since, until).
    assert ids(store.list_runs(RunFilter(statuses=("running", "completed")))) == [
        "run-4", "run-2"]
    assert ids(store.list_runs(RunFilter(since=T0 + 1, until=T0 + 3))) == [
        "run-4", "run-3", "run-2"]
    assert ids(store.list_runs(RunFilter(since=T0 + 2))) == ["run-5", "run-4", "run-3"]
    assert ids(store.list_runs(RunFilter(until=T0 + 0.5))) == ["run-1"]
    assert store.count_runs(RunFilter(since=T0 + 3, until=T0 + 1)) == 0
    assert ids(store.list_runs(RunFilter(job_id="build", since=T0 + 1), limit=1,
                               offset=1)) == ["run-4"]
    # Times compare to the microsecond, as runs show them: a run's own shown
    # created_at (here rounded up) is a since that includes it and an until that does not.
    store.append([run_row("run-6", created=T0 + 10.1234567)])
    shown = T0 + 10.123457
    assert ids(store.list_runs(RunFilter(since=shown))) == ["run-6"]
    assert store.count_runs(RunFilter(since=T0 + 2, until=shown)) == 3


def test_runs_are_found_by_their_arguments_as_the_cli_writes_them(store: Store) -> None:
    """``arg.NAME=VALUE`` filters, evaluated by the store: strings, numbers, booleans, an
    array's elements, an object's KEY=VALUE entries, unicode; a secret never matches."""
    store.append([
        run_row("run-1", created=T0, args={
            "name": "world", "count": 5, "ratio": 0.5, "loud": True, "tags": ["a", "b c"],
            "meta": {"env": "prod", "n": 2}, "token": "[secret]"}),
        run_row("run-2", created=T0 + 1, args={
            "name": "wörld ✓", "count": 5.0, "loud": False, "tags": ["b c"],
            "meta": {"env": "dev"}, "token": "[secret]", "big": 9_007_199_254_740_993}),
        run_row("run-3", created=T0 + 2, job="other", args={"name": "world", "count": "5"}),
        run_row("run-4", created=T0 + 3, args={}),
    ])

    def ids(*args: tuple[str, str], **fields: Any) -> list[str]:
        query = RunFilter(args=args, **fields)
        found = [run.id for run in store.list_runs(query)]
        assert store.count_runs(query) == len(found)
        return found

    assert ids(("name", "world")) == ["run-3", "run-1"]
    assert ids(("name", "world"), job_id="demo") == ["run-1"]
    assert ids(("name", "wörld ✓")) == ["run-2"]
    assert ids(("name", "World")) == []  # values are compared exactly
    # A number matches its decimal text, whatever JSON type the run kept it as.
    assert ids(("count", "5")) == ["run-3", "run-2", "run-1"]
    assert ids(("count", "5.0")) == ["run-2", "run-1"]  # run-3's is the string "5"
    assert ids(("ratio", "0.5")) == ["run-1"] and ids(("ratio", ".5")) == []
    assert ids(("big", "9007199254740993")) == ["run-2"]
    assert ids(("big", "9007199254740992")) == []
    assert ids(("loud", "true")) == ["run-1"] and ids(("loud", "false")) == ["run-2"]
    assert ids(("loud", "1")) == []
    assert ids(("tags", "a")) == ["run-1"] and ids(("tags", "b c")) == ["run-2", "run-1"]
    assert ids(("tags", "a"), ("tags", "b c")) == ["run-1"]  # every filter holds
    assert ids(("meta", "env=prod")) == ["run-1"] and ids(("meta", "n=2")) == ["run-1"]
    assert ids(("meta", "env")) == [] and ids(("meta", "prod")) == []
    assert ids(("name", "world"), ("loud", "true")) == ["run-1"]
    assert ids(("name", "world"), ("loud", "false")) == []
    assert ids(("nope", "x")) == [] and ids(("name", "")) == []
    # A secret's value is not in the store: what stands in its place matches nothing.
    assert ids(("token", "[secret]")) == [] and ids(("token", "hunter2")) == []
    assert ids(("name", "world"), since=T0 + 1) == ["run-3"]
    assert [run.id for run in store.list_runs(RunFilter(args=(("count", "5"),)), limit=1,
                                              offset=1)] == ["run-2"]


def test_runs_are_found_by_what_started_them(store: Store) -> None:
    """``trigger=KIND[:NAME]``: a schedule's or a hook's runs, or the runs of no trigger."""
    nightly = {"kind": "schedule", "name": "backup#0", "fire_at": "2027-01-01T02:30:00Z"}
    store.append([
        run_row("run-1", created=T0),
        run_row("run-2", created=T0 + 1, trigger=nightly, trigger_key="schedule:backup#0@1"),
        run_row("run-3", created=T0 + 2, trigger={**nightly, "name": "other", "manual": True},
                trigger_key="schedule:other@manual-x"),
        run_row("run-4", created=T0 + 3, trigger={"kind": "hook", "name": "push",
                                                  "delivery": "d-1"}, trigger_key="hook:push:d-1"),
        run_row("run-5", created=T0 + 4, trigger={"kind": "hook", "name": "backup#0",
                                                  "delivery": None}, trigger_key="hook:b:~x"),
    ])

    def ids(kind: str, name: str | None = None, **fields: Any) -> list[str]:
        query = RunFilter(trigger=(kind, name), **fields)
        found = [run.id for run in store.list_runs(query)]
        assert store.count_runs(query) == len(found)
        return found

    assert ids("schedule") == ["run-3", "run-2"]
    assert ids("schedule", "backup#0") == ["run-2"]
    assert ids("hook") == ["run-5", "run-4"]
    assert ids("hook", "push") == ["run-4"]
    assert ids("hook", "backup#0") == ["run-5"]  # a hook's name is not a schedule's
    assert ids("hook", "nope") == []
    assert ids("none") == ["run-1"]
    assert ids("schedule", since=T0 + 2) == ["run-3"]


def test_run_events_move_the_status_and_terminal_is_sticky(store: Store) -> None:
    store.append([run_row("run-a"), event("run-a", ts=T0 + 1)])
    run = store.get_run("run-a")
    assert (run.status, run.started_at, run.finished_at) == ("running", T0 + 1, None)
    store.append([finish("run-a", "failed", ts=T0 + 5, exit_code=3, error="boom")])
    run = store.get_run("run-a")
    assert (run.status, run.finished_at, run.exit_code, run.error) == (
        "failed", T0 + 5, 3, "boom")
    store.append([event("run-a", ts=T0 + 6), finish("run-a", "completed", ts=T0 + 7)])
    assert store.get_run("run-a") == run  # a late record never rewrites a finished run


def test_statuses_unfinished_and_terminal_runs(store: Store) -> None:
    store.append([run_row("run-q"), run_row("run-r"), run_row("run-c"), run_row("run-i")])
    store.append([event("run-r"), event("run-c"), finish("run-c"),
                  finish("run-i", "interrupted")])
    assert store.run_statuses(["run-q", "run-r", "run-c", "run-i", "run-x"]) == {
        "run-q": "queued", "run-r": "running", "run-c": "completed", "run-i": "interrupted"}
    assert store.run_statuses([]) == {}
    assert sorted(run.id for run in store.unfinished_runs()) == ["run-q", "run-r"]
    assert sorted(store.terminal_among(["run-q", "run-r", "run-c", "run-i", "run-x"])) == [
        "run-c", "run-i"]
    assert store.terminal_among([]) == []
    many = [f"run-{i:04d}" for i in range(1200)]  # more than one query's worth of ids
    assert sorted(store.terminal_among([*many, "run-c"])) == ["run-c"]
    assert store.run_statuses([*many, "run-q"]) == {"run-q": "queued"}


# -- idempotency --------------------------------------------------------------------------------


def test_an_idempotency_record_is_found_with_its_age(store: Store) -> None:
    record = IdempotencyRecord(key="scope:key-1", body_sha256="hmac-sha256:aa",
                               run_id="run-a", created_at=T0)
    store.append([run_row("run-a"), record])
    # However old: whether it is still fresh is the engine's rule (24 h).
    assert store.find_idempotent("scope:key-1") == record
    assert store.find_idempotent("scope:key-2") is None
    assert store.find_idempotent("other:key-1") is None


def test_a_fresh_key_is_never_taken_again_nor_overwritten(store: Store) -> None:
    first = IdempotencyRecord("scope:k", "hmac-sha256:aa", "run-a", T0)
    store.append([run_row("run-a"), first])
    # A second request with the key, a second before its first's 24 h are up: refused
    # whole (no run row), answered with the record that holds the key.
    with pytest.raises(IdempotencyKeyTaken) as taken:
        store.append([run_row("run-b", created=T0 + DAY - 1),
                      IdempotencyRecord("scope:k", "hmac-sha256:bb", "run-b", T0 + DAY - 1)])
    assert (taken.value.key, taken.value.body_digest, taken.value.run_id,
            taken.value.created_at) == ("scope:k", "hmac-sha256:aa", "run-a", T0)
    assert store.find_idempotent("scope:k") == first
    assert [run.id for run in store.list_runs()] == ["run-a"]
    # Through the journal too: only that group is left out; the others of its batch commit.
    answers = journal(store, [[run_row("run-c", created=T0 + 1),
                               IdempotencyRecord("scope:k", "hmac-sha256:cc", "run-c", T0 + 1)],
                              [run_row("run-d", created=T0 + 2), event("run-d", ts=T0 + 2)]])
    refused, kept = answers.results[0]
    assert isinstance(refused, IdempotencyKeyTaken) and refused.run_id == "run-a"
    assert isinstance(kept, list) and [record.type for record in kept] == [RUN_START]
    assert sorted(run.id for run in store.list_runs()) == ["run-a", "run-d"]
    # Once 24 h old the key is forgotten: a new request takes it (its record replaces the old).
    later = IdempotencyRecord("scope:k", "hmac-sha256:ee", "run-e", T0 + DAY)
    store.append([run_row("run-e", created=T0 + DAY), later])
    assert store.find_idempotent("scope:k") == later


def test_two_stores_racing_for_one_key_start_one_run(backend: Backend, store: Store) -> None:
    # Two processes on one database (two servers on one PostgreSQL, two flwd on one
    # SQLite file), each having looked the key up and found nothing, insert their run
    # with the key at the same moment: exactly one run, the other is told whose it is.
    store.migrate()
    stores = [store, backend.same(store)]
    rounds = 20
    go = threading.Barrier(2)
    answers: dict[tuple[int, int], object] = {}

    def request(index: int) -> None:
        for round_ in range(rounds):
            key, run_id = f"scope:key-{round_}", f"run-{round_}-{index}"
            created = T0 + round_
            try:
                assert stores[index].find_idempotent(key) is None
                go.wait(WAIT)  # both looked and found nothing: now both insert
                stores[index].append([run_row(run_id, created=created),
                                      IdempotencyRecord(key, f"hmac-sha256:{index}", run_id,
                                                        created)])
                answers[round_, index] = run_id
            except BaseException as exc:  # reported by the main thread
                answers[round_, index] = exc

    threads = [threading.Thread(target=request, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 4)
    assert not any(thread.is_alive() for thread in threads)
    for round_ in range(rounds):
        outcomes = [answers[round_, index] for index in range(2)]
        won = [answer for answer in outcomes if isinstance(answer, str)]
        lost = [answer for answer in outcomes if isinstance(answer, IdempotencyKeyTaken)]
        assert len(won) == 1 and len(lost) == 1, outcomes
        assert lost[0].run_id == won[0]
        record = store.find_idempotent(f"scope:key-{round_}")
        assert record is not None and record.run_id == won[0]  # the winner's, never overwritten
    assert store.count_runs() == rounds


# -- retention ----------------------------------------------------------------------------------


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"


def make_run_dirs(runs_dir: Path, run_ids: Sequence[str]) -> None:
    for run_id in run_ids:
        (runs_dir / run_id).mkdir(parents=True)
        (runs_dir / run_id / "meta.json").write_text("{}")


def test_collect_by_count_evicts_whole_finished_runs_oldest_first(store: Store, runs_dir: Path
                                                                   ) -> None:
    store.append([run_row("run-live", created=T0 - 10), event("run-live")])  # oldest, running
    for i in range(5):
        finished_run(store, f"run-{i}", created=T0 + i, lines=3)
    store.append([IdempotencyRecord(key="k:0", body_sha256="d", run_id="run-0",
                                    created_at=T0 + 100)])
    payload = sum(len(json.dumps(row.data, ensure_ascii=False, separators=(",", ":")).encode())
                  + len(row.lines or b"") for i in range(3)
                  for row in store.read_events(f"run-{i}"))
    make_run_dirs(runs_dir, ["run-live", *(f"run-{i}" for i in range(5))])
    top = store.event_bounds("run-2")[1]
    result = store.collect(RetentionPolicy(retain_runs=2), runs_dir=runs_dir)
    assert result.evicted == ["run-0", "run-1", "run-2"]  # the newest 2 of all are kept
    assert result.events_deleted == 3 * (1 + 3 + 1) and not result.dry_run
    # What the eviction metrics count: the events' bytes, the keys and theirs.
    assert result.event_bytes_deleted == payload > 0
    assert (result.keys_deleted, result.key_bytes_deleted) == (1, len("k:0" "d" "run-0"))
    for run_id in result.evicted:
        with pytest.raises(RunNotFound):
            store.get_run(run_id)
        assert store.read_events(run_id) == [] and store.event_bounds(run_id) == (0, 0)
        assert store.was_evicted(run_id) and not (runs_dir / run_id).exists()
    for run_id in ("run-live", "run-3", "run-4"):
        assert store.get_run(run_id).id == run_id
        assert not store.was_evicted(run_id) and (runs_dir / run_id).exists()
    assert store.evicted_through() == top
    assert store.find_idempotent("k:0") is None  # gone with its run
    assert store.count_runs() == 3
    # A cancel asked through another replica and never taken (the run ended first) goes
    # with its run; a kept run's stays.
    store.request_cancel("run-3", reason="late", by="a", force=False)
    store.request_cancel("run-4", reason="late", by="a", force=False)
    assert store.collect(RetentionPolicy(retain_runs=1), runs_dir=runs_dir).evicted == ["run-3"]
    assert [taken.run_id for taken in store.take_cancels(["run-3", "run-4"])] == ["run-4"]
    # Nothing more to do: a second pass evicts nothing.
    assert store.collect(RetentionPolicy(retain_runs=2), runs_dir=runs_dir).evicted == []


def test_collect_by_age_uses_the_finish_time(store: Store) -> None:
    now = T0 + 30 * DAY
    finished_run(store, "run-old", created=T0, finished=T0 + 1)
    finished_run(store, "run-long", created=T0, finished=now - 0.5 * DAY)  # finished lately
    finished_run(store, "run-recent", created=now - 0.2 * DAY)
    store.append([run_row("run-stuck", created=T0), event("run-stuck")])  # running
    result = store.collect(RetentionPolicy(retain_days=1), runs_dir=None, now=now)
    assert result.evicted == ["run-old"]
    assert sorted(run.id for run in store.list_runs()) == ["run-long", "run-recent",
                                                           "run-stuck"]
    assert store.collect(RetentionPolicy(retain_days=1), runs_dir=None,
                         now=now + 0.6 * DAY).evicted == ["run-long"]


def test_collect_by_size_evicts_the_oldest_until_under_the_limit(store: Store) -> None:
    for i in range(6):  # ~200 KB each
        store.append([run_row(f"run-{i}", created=T0 + i), event(f"run-{i}"),
                      chunk(f"run-{i}", [b"z" * 1000] * 200), finish(f"run-{i}")])
    store.append([run_row("run-live", created=T0 - 1), event("run-live"),
                  chunk("run-live", [b"y" * 1000] * 50)])
    limit_mb = 0.5
    before = store.storage_usage()["used_bytes"]
    assert before > limit_mb * 1024 * 1024
    result = store.collect(RetentionPolicy(max_db_mb=limit_mb), runs_dir=None)
    assert result.bytes_before == before
    assert 0 < result.bytes_after <= limit_mb * 1024 * 1024
    assert result.evicted == [f"run-{i}" for i in range(len(result.evicted))]  # oldest first
    assert 0 < len(result.evicted) < 6  # just under the limit, not far below it
    assert store.get_run("run-live").status == "running"
    assert store.storage_usage()["used_bytes"] == result.bytes_after


def test_a_dry_run_names_what_would_go_and_evicts_nothing(store: Store) -> None:
    for i in range(4):
        finished_run(store, f"run-{i}", created=T0 + i)
    last = store.last_seq()
    dry = store.collect(RetentionPolicy(retain_runs=1), runs_dir=None, dry_run=True)
    assert dry.dry_run and dry.evicted == ["run-0", "run-1", "run-2"]
    assert dry.events_deleted == 0 and dry.bytes_after == dry.bytes_before
    assert store.count_runs() == 4 and store.last_seq() == last
    assert store.evicted_through() == 0 and not store.was_evicted("run-0")
    real = store.collect(RetentionPolicy(retain_runs=1), runs_dir=None)
    assert real.evicted == dry.evicted and not real.dry_run


def test_storage_usage_reports_the_database(store: Store) -> None:
    finished_run(store, "run-0", created=T0 - 5, lines=4)
    finished_run(store, "run-1", created=T0 + 5)
    store.collect(RetentionPolicy(retain_runs=1), runs_dir=None)
    usage = store.storage_usage()
    assert set(usage) == {"driver", "bytes_used", "max_bytes", "journal_bytes", "schema_version",
                          "db_bytes", "wal_bytes", "used_bytes", "runs", "events",
                          "oldest_run_created_at", "evicted_runs", "evicted_through_seq"}
    assert usage["runs"] == 1 and usage["events"] == 2
    assert usage["oldest_run_created_at"] == T0 + 5
    assert usage["evicted_runs"] == 1 and usage["evicted_through_seq"] == 6
    assert usage["used_bytes"] > 0
    assert store.evicted_through() == 6
    # The reference's keys: the backend, its size and what it can reach, the journal's
    # payload, and the schema version the database is at (it was just migrated).
    assert isinstance(usage["driver"], str) and usage["driver"]
    assert 0 < usage["bytes_used"] < usage["max_bytes"]
    assert usage["schema_version"] == SCHEMA_VERSION
    assert usage["journal_bytes"] > 0


def test_journal_bytes_count_the_payload_of_events_and_output(store: Store) -> None:
    finished_run(store, "run-0", created=T0)
    before = store.storage_usage()["journal_bytes"]
    line = b"x" * 1000
    store.append([chunk("run-0", [line, line, line])])
    grown = store.storage_usage()["journal_bytes"] - before
    # Three lines of output, their separators and the chunk's small data.
    assert 3000 < grown < 3200
    store.append([event("run-0", STEP_LOG, step="é" * 100)])
    # Bytes, not characters: the event's data holds 200 bytes of "é".
    assert store.storage_usage()["journal_bytes"] - before - grown >= 200


# -- sources ------------------------------------------------------------------------------------


def test_sources_are_saved_updated_listed_by_name_and_deleted(store: Store) -> None:
    first = SourceRecord("tools", "git", {"url": "https://example.org/t.git", "ref": "main"},
                         {"commit": None, "tags": ["a", "é"]}, T0, T0)
    store.save_source(first)
    store.save_source(SourceRecord("addons", "oci", {"image": "x"}, {}, T0 + 1, T0 + 1))
    assert [record.name for record in store.load_sources()] == ["addons", "tools"]
    assert store.load_sources()[1] == first
    # Saving by an existing name updates it (it keeps when it was created).
    store.save_source(SourceRecord("tools", "git", {"url": "https://example.org/t.git",
                                                    "ref": "v2"}, {"commit": "abc"},
                                   T0 + 9, T0 + 9))
    (addons, tools) = store.load_sources()
    assert (tools.spec["ref"], tools.state, tools.created_at, tools.updated_at) == (
        "v2", {"commit": "abc"}, T0, T0 + 9)
    assert addons.type == "oci"
    assert store.delete_source("tools") is True
    assert store.delete_source("tools") is False
    assert [record.name for record in store.load_sources()] == ["addons"]


def test_an_update_of_a_removed_source_writes_nothing(store: Store, backend: Backend) -> None:
    # What a server's background checkout saves (a restore, following another server)
    # must not bring back a source another server removed meanwhile.
    assert store.update_source(SourceRecord("tools", "git", {}, {}, T0, T0)) is False
    store.save_source(SourceRecord("tools", "git", {"ref": "main"}, {}, T0, T0))
    other = backend.same(store)
    assert other.update_source(SourceRecord("TOOLS", "git", {"ref": "v2"}, {"commit": "c"},
                                            T0 + 5, T0 + 5)) is True
    (tools,) = store.load_sources()
    assert (tools.name, tools.spec, tools.state, tools.created_at, tools.updated_at) == (
        "tools", {"ref": "v2"}, {"commit": "c"}, T0, T0 + 5)
    assert store.delete_source("tools") is True
    assert other.update_source(SourceRecord("tools", "git", {}, {}, T0 + 9, T0 + 9)) is False
    assert store.load_sources() == []


# -- Rule-Y key/value ---------------------------------------------------------------------------
# The reference's own store tests (its §17.9, 44-48) first, then what a second backend must
# also get right: byte order, namespaces apart, reads that create nothing, a quota that
# holds under concurrent writers.

MIB = 1 << 20


def test_kv_put_then_get_returns_the_value_and_its_time(store: Store) -> None:
    store.kv_put("core_triggers", b"foo", b"bar", quota=MIB, now=T0)
    item = store.kv_get("core_triggers", b"foo")
    assert item is not None
    assert (item.key, item.value, item.updated_ms) == (b"foo", b"bar", int(T0 * 1000))
    assert store.kv_usage("core_triggers") == 6
    # Replacing a value stamps it anew and counts only what it is now.
    store.kv_put("core_triggers", b"foo", b"", quota=MIB, now=T0 + 1.5)
    replaced = store.kv_get("core_triggers", b"foo")
    assert replaced is not None and (replaced.value, replaced.updated_ms) == (
        b"", int(T0 * 1000) + 1500)
    assert store.kv_usage("core_triggers") == 3
    assert store.kv_get("core_triggers", b"fo") is None
    assert store.kv_get("core_invocation_state", b"foo") is None


def test_kv_a_put_over_the_quota_is_refused_and_stores_nothing(store: Store) -> None:
    store.kv_put("core_triggers", b"a", b"0123456789", quota=20)
    with pytest.raises(KvQuotaExceeded) as refused:
        store.kv_put("core_triggers", b"b", b"0123456789", quota=20)
    assert "core_triggers" in refused.value.detail
    assert store.kv_get("core_triggers", b"b") is None
    assert store.kv_usage("core_triggers") == 11
    # Replacing counts the difference only: a's 11 bytes may grow to exactly 20.
    store.kv_put("core_triggers", b"a", b"x" * 19, quota=20)
    assert store.kv_usage("core_triggers") == 20
    with pytest.raises(KvQuotaExceeded):
        store.kv_put("core_triggers", b"a", b"x" * 20, quota=20)
    # A put that does not grow the namespace is taken even over a quota lowered since.
    store.kv_put("core_triggers", b"a", b"x" * 5, quota=3)
    assert store.kv_usage("core_triggers") == 6
    # Another namespace has its own count.
    store.kv_put("core_invocation_state", b"b", b"0123456789", quota=20)
    assert store.kv_usage("core_invocation_state") == 11


def test_kv_scan_pages_a_prefix_in_key_order(store: Store) -> None:
    for key in (b"app:one", b"app:two", b"app:three", b"bee:one", b"ap"):
        store.kv_put("core_triggers", key, b"v-" + key, quota=MIB)
    store.kv_put("core_invocation_state", b"app:zzz", b"other namespace", quota=MIB)
    first, more = store.kv_scan("core_triggers", prefix=b"app:", limit=2)
    assert [item.key for item in first] == [b"app:one", b"app:three"] and more
    assert first[0].value == b"v-app:one"
    rest, more = store.kv_scan("core_triggers", prefix=b"app:", after=first[-1].key, limit=2)
    assert [item.key for item in rest] == [b"app:two"] and not more
    everything, more = store.kv_scan("core_triggers")
    assert [item.key for item in everything] == [b"ap", b"app:one", b"app:three", b"app:two",
                                                 b"bee:one"] and not more
    # Exactly `limit` left: no more after them.
    page, more = store.kv_scan("core_triggers", after=b"app:two", limit=1)
    assert [item.key for item in page] == [b"bee:one"] and not more
    assert store.kv_scan("core_triggers", prefix=b"zzz") == ([], False)


def test_kv_keys_are_bytes_in_byte_order(store: Store) -> None:
    keys = [b"\x00", b"a", b"a\x00", b"a\xff", b"a\xff\xff", b"b", "é".encode(), b"\xff"]
    for key in reversed(keys):
        store.kv_put("ns", key, key, quota=MIB)
    assert [item.key for item in store.kv_scan("ns")[0]] == keys
    # A prefix ending in 0xff bytes still bounds the range correctly.
    assert [item.key for item in store.kv_scan("ns", prefix=b"a\xff")[0]] == [
        b"a\xff", b"a\xff\xff"]
    assert [item.key for item in store.kv_scan("ns", prefix=b"\xff")[0]] == [b"\xff"]
    assert [item.key for item in store.kv_scan("ns", prefix=b"a")[0]] == [
        b"a", b"a\x00", b"a\xff", b"a\xff\xff"]


def test_kv_delete_removes_the_key_and_its_bytes(store: Store) -> None:
    store.kv_put("core_triggers", b"k", b"value", quota=MIB)
    assert store.kv_delete("core_triggers", b"k") is True
    assert store.kv_get("core_triggers", b"k") is None
    assert store.kv_usage("core_triggers") == 0
    assert store.kv_delete("core_triggers", b"k") is False


def test_kv_key_and_value_limits(store: Store) -> None:
    with pytest.raises(KvKeyTooLong):
        store.kv_put("ns", b"k" * 257, b"", quota=MIB)
    with pytest.raises(KvValueTooLong):
        store.kv_put("ns", b"k", b"v" * 8193, quota=MIB)
    with pytest.raises(KvKeyRequired):
        store.kv_put("ns", b"", b"v", quota=MIB)
    assert not store.exists(), "a refused put makes no database"
    store.kv_put("ns", b"k" * 256, b"v" * 8192, quota=MIB)
    item = store.kv_get("ns", b"k" * 256)
    assert item is not None and item.value == b"v" * 8192


def test_kv_reads_without_a_database_are_empty_and_create_nothing(backend: Backend) -> None:
    store = backend.fresh()
    assert store.kv_get("ns", b"k") is None
    assert store.kv_scan("ns", prefix=b"a", after=b"b") == ([], False)
    assert store.kv_usage("ns") == 0
    assert store.kv_delete("ns", b"k") is False
    assert not store.exists() and backend.footprint(store) == []


def test_kv_a_put_to_a_database_that_cannot_be_opened_is_a_storage_error(backend: Backend
                                                                          ) -> None:
    with pytest.raises(StorageError):
        backend.unopenable().kv_put("ns", b"k", b"v", quota=MIB)


def test_kv_the_quota_holds_under_concurrent_writers(backend: Backend) -> None:
    # Several stores of one database (as the server and a job's `flwd :kv` are), each
    # putting from its own threads: exactly as many 10-byte entries fit as the quota allows.
    first = backend.fresh()
    first.migrate()
    stores = [first, *(backend.same(first) for _ in range(3))]
    outcomes: list[str] = []
    lock = threading.Lock()

    def writer(index: int) -> None:
        store = stores[index % len(stores)]
        for n in range(10):
            try:
                store.kv_put("ns", b"%02d-%02d" % (index, n), b"12345", quota=100)
                result = "stored"
            except KvQuotaExceeded:
                result = "refused"
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads)
    assert outcomes.count("stored") == 10 and outcomes.count("refused") == 70
    assert first.kv_usage("ns") == 100
    assert len(first.kv_scan("ns")[0]) == 10


# -- browser sessions --------------------------------------------------------------------------
# The store keeps digests of session ids and token ids; whether a session still holds is
# the HTTP layer's judgement (tests/e2e/test_serve_sessions.py).

HOUR = 3600.0


def session(digest: str, token: str = "tok-a", *, created: float = T0,
            lifetime: float = HOUR) -> SessionRecord:
    return SessionRecord(digest, token, created, created + lifetime)


def test_sessions_are_created_found_and_deleted(store: Store) -> None:
    assert store.session_create(session("h1"), keep=4, now=T0) == []
    assert store.session_get("h1") == session("h1")
    assert store.session_get("h2") is None
    assert store.session_delete("h1") is True
    assert store.session_get("h1") is None
    assert store.session_delete("h1") is False


def test_an_expired_session_is_still_read_and_purged_by_the_next_login(store: Store) -> None:
    store.session_create(session("old", lifetime=60), keep=4, now=T0)
    # Reading judges no time: the caller refuses it (and may delete it).
    record = store.session_get("old")
    assert record is not None and record.expired(T0 + 60) and not record.expired(T0 + 59)
    store.session_create(session("new", "tok-b", created=T0 + 61), keep=4, now=T0 + 61)
    assert store.session_get("old") is None
    assert store.session_get("new") is not None


def test_a_token_keeps_at_most_its_cap_of_sessions_oldest_evicted(store: Store) -> None:
    for n in range(3):
        assert store.session_create(session(f"a{n}", created=T0 + n), keep=3, now=T0 + n) == []
    store.session_create(session("b0", "tok-b", created=T0), keep=3, now=T0)
    # The fourth login of tok-a evicts its oldest, and only tok-a's.
    assert store.session_create(session("a3", created=T0 + 3), keep=3, now=T0 + 3) == ["a0"]
    assert store.session_get("a0") is None
    assert [store.session_get(f"a{n}") is not None for n in (1, 2, 3)] == [True] * 3
    assert store.session_get("b0") is not None
    # A lower cap evicts as many as it must, oldest first.
    assert store.session_create(session("a4", created=T0 + 4), keep=1, now=T0 + 4) == [
        "a3", "a2", "a1"]
    # Logins within the same second are ordered by when they were made.
    assert store.session_create(session("a5", created=T0 + 4), keep=1, now=T0 + 4) == ["a4"]


def test_session_reads_without_a_database_are_empty_and_create_nothing(backend: Backend
                                                                       ) -> None:
    store = backend.fresh()
    assert store.session_get("h") is None
    assert store.session_delete("h") is False
    assert not store.exists() and backend.footprint(store) == []


def test_a_session_write_to_a_database_that_cannot_be_opened_is_a_storage_error(
        backend: Backend) -> None:
    with pytest.raises(StorageError):
        backend.unopenable().session_create(session("h"), keep=4, now=T0)


def test_the_cap_holds_under_concurrent_logins(backend: Backend) -> None:
    # Logins of one token from several threads and stores at once: never more than
    # `keep` rows of it survive, and every evicted digest is reported once.
    first = backend.fresh()
    first.migrate()
    stores = [first, *(backend.same(first) for _ in range(3))]
    evicted: list[str] = []
    lock = threading.Lock()

    def login(index: int) -> None:
        store = stores[index % len(stores)]
        for n in range(10):
            gone = store.session_create(session(f"s{index}-{n}", created=T0 + n), keep=5,
                                        now=T0)
            with lock:
                evicted.extend(gone)

    threads = [threading.Thread(target=login, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads)
    assert len(evicted) == len(set(evicted)) == 60 - 5
    kept = [f"s{i}-{n}" for i in range(6) for n in range(10) if f"s{i}-{n}" not in evicted]
    assert len(kept) == 5 and all(first.session_get(digest) is not None for digest in kept)


# -- notifications ---------------------------------------------------------------------------


def delivery(run_id: str, attempt: int, outcome: str, *, ts: float = T0 + 5) -> EventRecord:
    return event(run_id, NOTIFY_DELIVERY, ts=ts, sink="ops", sink_kind="webhook",
                 event="failure", delivery=f"{run_id}.failure.x", attempt=attempt,
                 outcome=outcome, status=500 if outcome == "retrying" else 200, error=None,
                 next_retry_in=1.5 if outcome == "retrying" else None)


def test_a_delivery_event_is_listed_with_its_run_and_goes_with_it(store: Store) -> None:
    store.append([run_row("r1"), event("r1"), finish("r1", "failed", ts=T0 + 1),
                  delivery("r1", 1, "retrying"), delivery("r1", 2, "delivered", ts=T0 + 7)])
    rows = store.notify_deliveries("r1")
    assert [(row.sink, row.event, row.attempt, row.outcome) for row in rows] == [
        ("ops", "failure", 1, "retrying"), ("ops", "failure", 2, "delivered")]
    assert rows[0].detail == {"sink_kind": "webhook", "delivery": "r1.failure.x",
                              "status": 500, "error": None, "next_retry_in": 1.5}
    assert rows[1].to_json()["at"] == "2023-11-14T22:13:27.000000Z"
    assert store.notify_deliveries("r1", limit=1) == rows[:1]
    assert store.notify_deliveries("nope") == []
    # The run's stream ends at run.finish: the deliveries come after it.
    assert store.finish_seq("r1") == 2 and store.event_bounds("r1") == (1, 4)
    store.append([run_row("r2", created=T0 + 1), finish("r2", ts=T0 + 2)])
    assert store.collect(RetentionPolicy(retain_runs=1), runs_dir=None).evicted == ["r1"]
    assert store.notify_deliveries("r1") == []


def test_recent_outcomes_are_a_job_s_finished_runs_of_one_workspace_newest_first(
        store: Store) -> None:
    history = [("a", "failed", "/ws"), ("b", "canceled", "/ws"), ("c", "completed", "/ws"),
               ("d", "interrupted", "/ws"), ("e", "failed", "/other"), ("f", "failed", "/ws")]
    for index, (run_id, status, workspace) in enumerate(history):
        store.append([run_row(run_id, created=T0 + index, workspace=workspace),
                      finish(run_id, status, ts=T0 + 10 + index)])
    store.append([run_row("live", workspace="/ws")])  # unfinished: no outcome yet
    assert store.recent_outcomes("demo", workspace="/ws", until=T0 + 100, limit=10) == [
        "failed", "interrupted", "completed", "failed"]
    assert store.recent_outcomes("demo", workspace="/ws", until=T0 + 13, limit=2) == [
        "interrupted", "completed"]
    assert store.recent_outcomes("demo", workspace="/other", until=T0 + 100, limit=10) == [
        "failed"]
    assert store.recent_outcomes("other", workspace="/ws", until=T0 + 100, limit=10) == []


def test_notification_reads_without_a_database_are_empty_and_create_nothing(
        backend: Backend) -> None:
    store = backend.fresh()
    assert store.notify_deliveries("r1") == [] and store.finish_seq("r1") is None
    assert store.recent_outcomes("demo", workspace=None, until=T0, limit=5) == []
    assert not store.exists()
