"""RunState: scheduling, error policies, retries, cancel and timeout, the final outcome."""

# The state changes between asserts (properties, statuses), which mypy's narrowing cannot see.
# mypy: disable-error-code="unreachable, comparison-overlap"

from __future__ import annotations

from flwd.engine._state import ErrorPolicy, RunState


def sequential(*ids: str, policy: ErrorPolicy = "abort", retries: int = 0) -> RunState:
    return RunState.create([(sid, ()) for sid in ids], sequential=True, policy=policy,
                           retries=retries)


def dag(steps: dict[str, tuple[str, ...]], policy: ErrorPolicy = "abort",
        retries: int = 0) -> RunState:
    return RunState.create(list(steps.items()), sequential=False, policy=policy,
                           retries=retries)


def run_ok(state: RunState, step_id: str) -> None:
    state.step_started(step_id)
    assert state.step_finished(step_id, 0) == "done"


def run_fail(state: RunState, step_id: str, code: int = 1) -> str:
    state.step_started(step_id)
    return state.step_finished(step_id, code)


# -- sequential scripts -----------------------------------------------------------

def test_sequential_offers_one_step_at_a_time_in_order():
    state = sequential("100_a", "200_b", "300_c")
    assert state.ready() == ["100_a"]
    state.step_started("100_a")
    assert state.ready() == []
    assert state.running == ["100_a"]
    assert not state.done
    state.step_finished("100_a", 0)
    assert state.ready() == ["200_b"]
    run_ok(state, "200_b")
    run_ok(state, "300_c")
    assert state.ready() == []
    assert state.done
    assert state.outcome() == ("completed", 0, None)
    assert state.summary() == {"completed": 3}


def test_sequential_ignores_needs():
    state = RunState.create([("a", ("b",)), ("b", ())], sequential=True)
    assert state.ready() == ["a"]


def test_sequential_abort_stops_at_first_failure():
    state = sequential("a", "b", "c")
    run_ok(state, "a")
    assert run_fail(state, "b", 3) == "done"
    assert state.aborted
    assert state.ready() == []
    assert state.done
    assert state.outcome() == ("failed", 3, "step b exited with status 3")
    assert state.steps["c"].status == "skipped"
    assert state.summary() == {"completed": 1, "failed": 1, "skipped": 1}


def test_sequential_continue_goes_on_after_failures():
    state = sequential("a", "b", "c", policy="continue")
    run_fail(state, "a", 2)
    assert not state.aborted
    assert state.ready() == ["b"]
    run_ok(state, "b")
    run_fail(state, "c", 5)
    assert state.done
    status, code, error = state.outcome()
    assert (status, code) == ("failed", 2)
    assert error == "step a exited with status 2 (2 steps failed)"


def test_failure_error_text_prefers_the_step_error():
    state = sequential("a")
    state.step_started("a")
    state.step_finished("a", None, "cannot start bash: No such file or directory")
    assert state.outcome() == ("failed", None, "cannot start bash: No such file or directory")


def test_zero_exit_with_an_error_is_a_failure():
    state = sequential("a")
    state.step_started("a")
    state.step_finished("a", 0, "something went wrong")
    assert state.steps["a"].status == "failed"


def test_no_steps_completes_at_once():
    state = sequential()
    assert state.done
    assert state.outcome() == ("completed", 0, None)
    assert state.summary() == {}


# -- DAG ------------------------------------------------------------------------------

def test_dag_readiness_follows_needs():
    state = dag({"fetch": (), "lint": (), "build": ("fetch",), "test": ("build", "lint")})
    assert state.ready() == ["fetch", "lint"]
    state.step_started("fetch")
    state.step_started("lint")
    assert state.ready() == []
    state.step_finished("lint", 0)
    assert state.ready() == []  # build still waits for fetch
    state.step_finished("fetch", 0)
    assert state.ready() == ["build"]
    run_ok(state, "build")
    assert state.ready() == ["test"]
    run_ok(state, "test")
    assert state.done
    assert state.outcome() == ("completed", 0, None)


def test_dag_ready_keeps_declaration_order():
    state = dag({"z": (), "a": (), "m": ()})
    assert state.ready() == ["z", "a", "m"]


def test_dag_continue_skips_dependents_transitively_but_runs_the_rest():
    state = dag({"a": (), "b": ("a",), "c": ("b",), "d": ()}, policy="continue")
    assert state.ready() == ["a", "d"]
    run_fail(state, "a")
    state.step_started("d")
    assert state.ready() == []
    assert state.steps["b"].status == "skipped"
    assert state.steps["c"].status == "skipped"
    assert not state.done  # d still runs
    state.step_finished("d", 0)
    assert state.done
    assert state.outcome() == ("failed", 1, "step a exited with status 1")
    assert state.summary() == {"failed": 1, "skipped": 2, "completed": 1}


def test_dag_abort_starts_nothing_new_after_a_failure():
    state = dag({"a": (), "b": (), "c": ("b",)})
    state.step_started("a")
    state.step_started("b")
    state.step_finished("a", 9)
    assert state.ready() == []
    assert not state.done  # b is still running
    state.step_finished("b", 0)
    assert state.ready() == []  # c would be ready, but the run aborted
    assert state.done
    assert state.outcome()[:2] == ("failed", 9)
    assert state.steps["c"].status == "skipped"


# -- retry ------------------------------------------------------------------------------

def test_retry_reattempts_then_fails():
    state = sequential("a", "b", policy="retry", retries=2)
    assert state.step_started("a") == 1
    assert state.step_finished("a", 1) == "retry"
    assert state.steps["a"].status == "retrying"
    # during the backoff the step is neither offered again nor is the next one
    assert state.ready() == []
    assert state.running == ["a"]
    assert not state.done
    assert state.step_started("a") == 2
    assert state.step_finished("a", 1) == "retry"
    assert state.step_started("a") == 3
    assert state.step_finished("a", 4) == "done"
    assert state.steps["a"].status == "failed"
    assert state.done
    assert state.outcome() == ("failed", 4, "step a exited with status 4")


def test_retry_success_on_a_later_attempt_continues_the_run():
    state = sequential("a", "b", policy="retry", retries=1)
    state.step_started("a")
    assert state.step_finished("a", 1) == "retry"
    state.step_started("a")
    assert state.step_finished("a", 0) == "done"
    assert state.steps["a"].attempts == 2
    assert state.ready() == ["b"]


def test_retrying_step_is_not_offered_by_dag_ready_and_dependents_wait():
    state = dag({"a": (), "b": ("a",), "c": ()}, policy="retry", retries=1)
    state.step_started("a")
    assert state.step_finished("a", 1) == "retry"
    assert state.ready() == ["c"]
    assert state.steps["b"].status == "pending"  # not skipped: a may still succeed


def test_retries_only_count_under_the_retry_policy():
    policies: tuple[ErrorPolicy, ...] = ("abort", "continue")
    for policy in policies:
        state = sequential("a", policy=policy, retries=3)
        assert state.retries == 0
        assert run_fail(state, "a") == "done"
        assert state.steps["a"].status == "failed"


# -- cancel and timeout ---------------------------------------------------------------------

def test_cancel_stops_scheduling_and_marks_the_running_step_canceled():
    state = sequential("a", "b")
    state.step_started("a")
    assert state.cancel("canceled by user") is True
    assert state.stopping
    assert state.cancel("again") is False
    assert state.cancel_reason == "canceled by user"
    assert state.ready() == []
    assert state.step_finished("a", 143) == "done"
    assert state.steps["a"].status == "canceled"
    assert state.done
    assert state.outcome() == ("canceled", None, "canceled by user")
    assert state.steps["b"].status == "skipped"


def test_cancel_does_not_retry():
    state = sequential("a", policy="retry", retries=5)
    state.step_started("a")
    state.cancel("stop")
    assert state.step_finished("a", 1) == "done"
    assert state.steps["a"].status == "canceled"


def test_cancel_during_retry_backoff():
    state = sequential("a", policy="retry", retries=5)
    state.step_started("a")
    assert state.step_finished("a", 1) == "retry"
    state.cancel("stop")
    assert not state.done  # the run actor still has to settle the step
    assert state.step_finished("a", 1) == "done"
    assert state.steps["a"].status == "canceled"
    assert state.done
    assert state.outcome() == ("canceled", None, "stop")


def test_step_that_succeeds_while_stopping_is_completed():
    state = dag({"a": (), "b": ()})
    state.step_started("a")
    state.step_started("b")
    state.cancel("stop")
    state.step_finished("a", 0)
    state.step_finished("b", -15)
    assert state.summary() == {"completed": 1, "canceled": 1}
    assert state.outcome() == ("canceled", None, "stop")


def test_timeout_is_a_failure_with_the_reason():
    state = sequential("a", "b")
    state.step_started("a")
    assert state.cancel("timed out after 5s", timeout=True)
    assert state.timed_out
    state.step_finished("a", 143, "timed out after 5s")
    assert state.steps["a"].status == "failed"
    assert state.outcome() == ("failed", 143, "timed out after 5s")
    assert state.steps["b"].status == "skipped"


def test_timeout_after_a_cancel_does_not_override_it():
    state = sequential("a")
    state.step_started("a")
    state.cancel("canceled by user")
    assert state.cancel("timed out", timeout=True) is False
    assert not state.timed_out
    state.step_finished("a", 143)
    assert state.outcome() == ("canceled", None, "canceled by user")


def test_timeout_between_steps_fails_the_run_without_an_exit_code():
    state = sequential("a", "b")
    run_ok(state, "a")
    state.cancel("timed out after 1s", timeout=True)
    assert state.ready() == []
    assert state.done
    assert state.outcome() == ("failed", None, "timed out after 1s")
    assert state.summary() == {"completed": 1, "skipped": 1}
