"""The run state machine: which step may start, what a result means, the final status.

Sans-IO: the run actor feeds it facts (a step started, a step finished, a
cancel was requested) and asks it what to do next. Tested without an event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

StepStatus = Literal["pending", "running", "retrying", "completed", "failed", "skipped",
                     "canceled"]
ErrorPolicy = Literal["abort", "continue", "retry"]


@dataclass(slots=True)
class StepState:
    id: str
    needs: tuple[str, ...]
    status: StepStatus = "pending"
    attempts: int = 0
    exit_code: int | None = None
    error: str | None = None
    #: Why a ``skipped`` step never ran (for its ``step.finish`` event).
    skip_reason: str | None = None
    reported: bool = False


@dataclass(slots=True)
class RunState:
    """Scheduling and outcome of one run.

    Args:
        steps: (step id, needs) in declaration order.
        sequential: NNN_ scripts: each step waits for the previous one
            (``needs`` is then ignored).
        policy: ``error_handling.policy``.
        retries: extra attempts of a failing step under ``policy: retry``.
    """

    steps: dict[str, StepState]
    sequential: bool
    policy: ErrorPolicy = "abort"
    retries: int = 0
    cancel_reason: str | None = None
    timed_out: bool = False
    _order: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, steps: list[tuple[str, tuple[str, ...]]], *, sequential: bool,
               policy: ErrorPolicy = "abort", retries: int = 0) -> RunState:
        state = cls({sid: StepState(sid, needs) for sid, needs in steps}, sequential,
                    policy, retries if policy == "retry" else 0)
        state._order = [sid for sid, _ in steps]
        return state

    # -- facts ---------------------------------------------------------------
    def step_started(self, step_id: str) -> int:
        """Record a start; returns the attempt number (1-based)."""
        step = self.steps[step_id]
        step.status = "running"
        step.attempts += 1
        return step.attempts

    def step_finished(self, step_id: str, exit_code: int | None, error: str | None = None
                      ) -> Literal["done", "retry"]:
        """Record a result; ``"retry"`` means: run the step again (after the backoff)."""
        step = self.steps[step_id]
        step.exit_code = exit_code
        step.error = error
        if exit_code == 0 and error is None:
            step.status = "completed"
            return "done"
        if self.stopping:
            step.status = "canceled" if self.cancel_reason and not self.timed_out else "failed"
            return "done"
        if step.attempts <= self.retries:
            # Not "pending": ready() must not hand it out again during the backoff.
            step.status = "retrying"
            return "retry"
        step.status = "failed"
        return "done"

    def cancel(self, reason: str, *, timeout: bool = False) -> bool:
        """Stop scheduling; returns False if a cancel was already recorded."""
        if self.cancel_reason is not None:
            return False
        self.cancel_reason = reason
        self.timed_out = timeout
        return True

    # -- questions -----------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return self.cancel_reason is not None

    @property
    def aborted(self) -> bool:
        return self.policy != "continue" and any(s.status == "failed" for s in self.steps.values())

    def ready(self) -> list[str]:
        """Pending steps that may start now (marks the hopeless ones ``skipped``)."""
        if self.stopping or self.aborted:
            return []
        if self.sequential:
            for sid in self._order:
                status = self.steps[sid].status
                if status in ("running", "retrying"):
                    return []
                if status == "pending":
                    return [sid]
            return []
        changed = True
        while changed:  # a skip can make the steps that need it hopeless too
            changed = False
            for step in self.steps.values():
                reason = self._hopeless(step)
                if step.status == "pending" and reason:
                    step.status = "skipped"
                    step.skip_reason = reason
                    changed = True
        return [
            sid for sid in self._order
            if self.steps[sid].status == "pending"
            and all(self.steps[n].status == "completed" for n in self.steps[sid].needs)
        ]

    def _hopeless(self, step: StepState) -> str:
        """Why ``step`` can never run because of its needs ("" when it still can)."""
        return ", ".join(f"{n} {self.steps[n].status}" for n in step.needs
                         if self.steps[n].status in ("failed", "skipped", "canceled"))

    @property
    def running(self) -> list[str]:
        return [sid for sid in self._order if self.steps[sid].status in ("running", "retrying")]

    @property
    def done(self) -> bool:
        """Nothing runs and nothing more will start."""
        return not self.running and not self.ready()

    def outcome(self) -> tuple[str, int | None, str | None]:
        """(status, exit code, error) once :attr:`done`."""
        for sid in self._order:
            step = self.steps[sid]
            if step.status in ("pending", "running", "retrying"):
                step.status = "skipped"
                step.skip_reason = self._hopeless(step) or (
                    "the run was canceled" if self.cancel_reason is not None
                    else "an earlier step failed")
        failed = [self.steps[s] for s in self._order if self.steps[s].status == "failed"]
        if self.timed_out:
            return "failed", failed[0].exit_code if failed else None, self.cancel_reason
        if self.cancel_reason is not None:
            return "canceled", None, self.cancel_reason
        if failed:
            first = failed[0]
            error = first.error or f"step {first.id} exited with status {first.exit_code}"
            if len(failed) > 1:
                error += f" ({len(failed)} steps failed)"
            return "failed", first.exit_code, error
        return "completed", 0, None

    def take_skipped(self) -> list[tuple[str, str]]:
        """Steps skipped since the last call, as (step id, reason), in declaration order.

        Each is returned once, so the run reports every skipped step with one
        ``step.finish`` event.
        """
        taken = []
        for sid in self._order:
            step = self.steps[sid]
            if step.status == "skipped" and not step.reported:
                step.reported = True
                taken.append((sid, step.skip_reason or "skipped"))
        return taken

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for step in self.steps.values():
            counts[step.status] = counts.get(step.status, 0) + 1
        return counts
