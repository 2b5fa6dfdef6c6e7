"""The Core DB contract for schedule state (every backend, through the Store port only):
watermarks that never move back, pauses that fire-records never undo, and the scheduled
fires that already have a run, found by their trigger keys."""

from __future__ import annotations

from flwd.events import schedule_key_prefix
from flwd.store import ScheduleState, Store

from .conftest import Backend
from .test_contract import T0, run_row

WS = "/work/space"


def test_a_store_without_a_database_has_no_schedule_state(backend: Backend) -> None:
    store = backend.fresh()
    assert store.schedule_states(WS) == {}
    assert store.schedule_fired(WS, "nightly", 0, T0) is None
    assert backend.footprint(store) == []


def test_the_watermark_moves_forward_only_and_the_last_fire_is_kept(store: Store) -> None:
    store.schedule_record(WS, "nightly", watermark=T0, now=T0)
    assert store.schedule_states(WS) == {"nightly": ScheduleState("nightly", T0, updated_at=T0)}
    store.schedule_record(WS, "nightly", watermark=T0 + 60, fire_at=T0 + 60,
                          outcome="started", run_id="run-a", now=T0 + 61)
    store.schedule_record(WS, "nightly", watermark=T0 + 30, now=T0 + 62)  # late: not back
    state = store.schedule_states(WS)["nightly"]
    assert (state.watermark, state.last_fire_at, state.last_outcome, state.last_run_id) == (
        T0 + 60, T0 + 60, "started", "run-a")
    store.schedule_record(WS, "nightly", watermark=T0 + 120, fire_at=T0 + 120,
                          outcome="skipped:overlap", now=T0 + 121)
    state = store.schedule_states(WS)["nightly"]
    assert (state.last_outcome, state.last_run_id) == ("skipped:overlap", None)
    assert store.schedule_states("/other/space") == {}


def test_pause_and_resume_leave_the_rest_alone(store: Store) -> None:
    assert store.schedule_pause(WS, "nightly", True, now=T0) is True
    assert store.schedule_pause(WS, "nightly", True, now=T0 + 1) is False
    store.schedule_record(WS, "nightly", watermark=T0 + 5, fire_at=T0 + 5,
                          outcome="skipped:paused", now=T0 + 5)
    state = store.schedule_states(WS)["nightly"]
    assert state.paused and state.watermark == T0 + 5
    assert store.schedule_pause(WS, "nightly", False, now=T0 + 6) is True
    state = store.schedule_states(WS)["nightly"]
    assert not state.paused and state.watermark == T0 + 5
    assert state.last_outcome == "skipped:paused"


def test_fires_with_a_run_are_found_by_their_trigger_keys(store: Store) -> None:
    def run(run_id: str, key: str, workspace: str = WS) -> None:
        store.append([run_row(run_id, workspace=workspace, trigger={"kind": "schedule"},
                              trigger_key=key)])

    nightly, other = schedule_key_prefix(WS, "nightly"), schedule_key_prefix(WS, "nightly-2")
    run("run-a", nightly + "2023-11-14T22:00:00Z")
    run("run-b", nightly + "2023-11-14T23:00:00Z")
    run("run-c", nightly + "manual-run-c")
    run("run-d", other + "2023-11-15T00:00:00Z")
    # Another workspace's schedule of the same name, in the same Core DB: its own key.
    run("run-e", schedule_key_prefix("/other/space", "nightly") + "2023-11-15T01:00:00Z",
        workspace="/other/space")
    run("run-f", schedule_key_prefix("/other/space", "nightly") + "2023-11-14T22:00:00Z",
        workspace="/other/space")
    hour = 3600.0
    ten = 1_699_999_200.0  # 2023-11-14T22:00:00Z
    assert store.schedule_fired(WS, "nightly", ten - hour, ten + 5 * hour) == ten + hour
    assert store.schedule_fired(WS, "nightly", ten - hour, ten + hour - 1) == ten
    assert store.schedule_fired(WS, "nightly", ten + hour, ten + 5 * hour) is None
    assert store.schedule_fired(WS, "nightly-2", ten, ten + 5 * hour) == ten + 2 * hour
