"""The run actor: executes one plan, step by step, and reports every change as an event.

One run actor per run, a TEMPORARY child of the runs supervisor: a failed run
is a result, never a reason to restart. It owns the run's directory, its
secret files and the process trees of its steps; whatever way it ends, the
trees are terminated and the secret files removed before it exits.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from actors import ActorRef, Inbox
from flwd.errors import FlwdError
from flwd.events import (
    POLICY_DECISION,
    RUN_CANCELED,
    RUN_FINISH,
    RUN_START,
    STEP_FINISH,
    STEP_LOG,
    STEP_START,
    EventRecord,
    format_ts,
    now,
)
from flwd.execute import (
    GroupTerminator,
    ProcessSpec,
    StepError,
    inherited_environment,
    profile_levels,
    remove_secret_files,
    render_profile,
    run_process_tree,
    secrets_dir,
    write_secret_files,
)
from flwd.observe import UNOBSERVED, Observer
from flwd.plan import Plan, StepPlan, display_command, step_environment

from ._journal import Append, JournalRef
from ._slots import Slots
from ._state import RunState

if TYPE_CHECKING:
    from flwd.containers import ContainerStopper, StepOutcome

#: Cancel requests are rare and tiny; a few slots absorb a double Ctrl-C plus
#: an HTTP cancel arriving together.
RUN_INBOX = 8


@dataclass(frozen=True, slots=True)
class Cancel:
    reason: str
    by: str
    #: Skip the rest of the grace period (second Ctrl-C).
    force: bool = False
    #: Stop because the run cannot go on (its events can no longer be journaled):
    #: it finishes ``failed`` with ``reason`` as its error, like a timeout.
    failure: bool = False


RunRef = ActorRef[Cancel]
#: Called after a successful run of an add-on job that had no pinned digest:
#: (source name, image run, digest observed). See ``Engine._record_digest``.
DigestObserver = Callable[[str, str, str], Awaitable[None]]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class RunActor:
    """Executes ``plan`` as run ``run_id``; see the module docstring."""

    def __init__(self, run_id: str, plan: Plan, journal: JournalRef, *, runs_dir: Path,
                 grace: float, on_digest: DigestObserver | None = None,
                 slots: Slots | None = None,
                 local_access: Mapping[str, str] | None = None,
                 observer: Observer = UNOBSERVED) -> None:
        self.run_id = run_id
        #: Told of the image pulls of container steps (metrics).
        self.observer = observer
        #: How a host step reaches this flwd's data dir (see ``step_environment``).
        self.local_access = local_access
        self.slots = slots
        self._queued: trio.CancelScope | None = None
        self.on_digest = on_digest
        #: Image digests observed by container steps (add-on jobs without a pin).
        self._digests: list[str] = []
        self.plan = plan
        self.journal = journal
        self.runs_dir = runs_dir
        self.run_dir = runs_dir / run_id
        #: Under $XDG_RUNTIME_DIR (a tmpfs) when usable, else in the run dir.
        self._secrets_dir = secrets_dir(runs_dir, run_id)
        self.grace = grace
        config = plan.job.config
        self.state = RunState.create(
            [(step.id, step.needs) for step in plan.steps],
            sequential=plan.sequential,
            policy=config.error_handling.policy,
            retries=config.error_handling.retries,
        )
        self._terminators: dict[str, GroupTerminator | ContainerStopper] = {}
        self._changed = trio.Event()
        self._stopping = trio.Event()
        self._force = False
        self._secret_files: dict[str, str] = {}
        self._profile_path: Path | None = None

    # -- actor shell ---------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[RunRef] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Execute the plan, serving cancel requests meanwhile.

        Cancellation: the step process trees are terminated with the
        TERM → grace → KILL ladder (shielded, bounded), the run is journaled as
        ``canceled`` if the journal is still there, and the secrets are removed.
        """
        with Inbox[Cancel](f"run {self.run_id}", RUN_INBOX) as inbox:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._execute, inbox.ref)
                task_status.started(inbox.ref)
                async for message in inbox:
                    await self._cancel(message)

    async def _cancel(self, message: Cancel) -> None:
        if message.failure:
            if self.state.cancel(message.reason, timeout=True):
                self._stop_everything()
            return
        if message.force:
            self._force = True
            for terminator in self._terminators.values():
                terminator.kill_now()
        if self.state.cancel(message.reason):
            await self._emit(RUN_CANCELED, {"reason": message.reason, "by": message.by})
            self._stop_everything()

    def _stop_everything(self) -> None:
        self._stopping.set()
        if self._queued is not None:
            self._queued.cancel(reason="canceled while queued")
        for terminator in self._terminators.values():
            terminator.request()
        self._changed.set()

    # -- events ----------------------------------------------------------------
    async def _emit(self, type_: str, data: dict[str, Any], *, ts: float | None = None) -> None:
        await self.journal.cast(Append([EventRecord(
            run_id=self.run_id, job_id=self.plan.job.id, type=type_,
            ts=now() if ts is None else ts, data=data)]))

    async def _output(self, step: str, channel: str, lines: bytes, count: int) -> None:
        await self.journal.cast(Append([EventRecord(
            run_id=self.run_id, job_id=self.plan.job.id, type=STEP_LOG, ts=now(),
            data={"step": step, "channel": channel}, lines=lines, n=count)]))

    # -- execution ---------------------------------------------------------------
    async def _execute(self, ref: RunRef) -> None:
        try:
            await self._execute_plan()
        finally:
            self._remove_secrets()
            ref.close()

    async def _execute_plan(self) -> None:
        if self.slots is None:
            await self._execute_plan_now()
            return
        job = self.plan.job
        if not self.slots.request(self.run_id, job.id, job.config.concurrency):
            # Stay ``queued`` until a slot frees; a cancel ends the wait.
            with trio.CancelScope() as self._queued:
                if not self.state.stopping:
                    await self.slots.wait(self.run_id)
            self._queued = None
            if self.state.stopping or self._queued_cancelled():
                if self.run_id in self.slots.book.holders:
                    self.slots.release(self.run_id)
                else:
                    self.slots.book.withdraw(self.run_id)
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await self._emit(RUN_FINISH, {
                        "status": "canceled", "finished_at": format_ts(now()),
                        "error": self.state.cancel_reason or "canceled while queued",
                        "steps": self.state.summary()})
                return
        with self.slots.holding(self.run_id):
            await self._execute_plan_now()

    def _queued_cancelled(self) -> bool:
        return self.run_id not in (self.slots.book.holders if self.slots else {})

    async def _execute_plan_now(self) -> None:
        plan = self.plan
        for decision in plan.decisions:
            await self._emit(POLICY_DECISION, {
                "run_id": self.run_id, **decision.to_json(), "level": decision.level,
                "security_profile": plan.profile})
        # The run row's started_at is this event's ts (the journal sets it).
        started = now()
        start: dict[str, Any] = {
            "status": "running",
            "job_id": plan.job.id,
            "started_at": format_ts(started),
            "executor": plan.executor,
            "security_profile": plan.profile,
            "composition": plan.composition,
            "steps": [step.id for step in plan.steps],
            "provenance": plan.provenance(),
        }
        if plan.runtime_kind is not None:
            start["runtime"] = plan.runtime_kind
        if plan.warnings:
            start["warnings"] = plan.warnings
        await self._emit(RUN_START, start, ts=started)
        status, exit_code, error = "failed", None, None
        try:
            self._prepare_run_dir()
            async with trio.open_nursery() as nursery:
                timeout = plan.job.config.timeout
                if timeout is not None:
                    nursery.start_soon(self._enforce_timeout, timeout)
                steps = {step.id: step for step in plan.steps}
                while True:
                    for step_id in self.state.ready():
                        self.state.step_started(step_id)
                        nursery.start_soon(self._run_step, steps[step_id])
                    await self._report_skipped()
                    if self.state.done:
                        break
                    await self._changed.wait()
                    self._changed = trio.Event()
                nursery.cancel_scope.cancel(reason="all steps finished")
            status, exit_code, error = self.state.outcome()
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self._report_skipped()
        except OSError as exc:
            error = f"cannot prepare the run directory {self.run_dir}: {exc.strerror or exc}"
        finally:
            # Before run.finish: a run that is terminal in the Core DB has no secret
            # file left even if flwd dies right after (recovery relies on it).
            self._remove_secrets()
            finished = now()
            data: dict[str, Any] = {"status": status, "finished_at": format_ts(finished),
                                    "steps": self.state.summary()}
            if exit_code is not None:
                data["exit_code"] = exit_code
            if error:
                data["error"] = error
            digest = self._digests[0] if status == "completed" and self._digests else None
            image = next((step.container.image for step in plan.steps
                          if step.container is not None), "")
            if digest is not None:
                # The run's provenance gains the digest it ran (the journal
                # stores it on the run row with the terminal status).
                provenance = plan.provenance()
                provenance["source"] = {**provenance["source"], "digest": digest,
                                        "resolved_ref": digest}
                data["provenance"] = provenance
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self._emit(RUN_FINISH, data)
                if digest is not None and self.on_digest is not None and plan.job.source:
                    await self.on_digest(plan.job.source, image, digest)

    async def _report_skipped(self) -> None:
        # A step that never runs still ends with a step.finish, so every reader (the
        # live CLI, :logs, the API) can say which steps did not run and why.
        for step_id, reason in self.state.take_skipped():
            await self._emit(STEP_FINISH, {"step": step_id, "status": "skipped",
                                           "reason": reason})

    async def _enforce_timeout(self, seconds: float) -> None:
        await trio.sleep(seconds)
        if self.state.cancel(f"timed out after {seconds:g}s", timeout=True):
            self._stop_everything()

    async def _run_step(self, step: StepPlan) -> None:
        backoff = self.plan.job.config.error_handling.retry_backoff
        while True:
            exit_code, error = await self._attempt(step)
            if self.state.step_finished(step.id, exit_code, error) == "done":
                break
            with trio.move_on_after(backoff):
                await self._stopping.wait()
            if self.state.stopping:
                self.state.step_finished(step.id, exit_code, error)
                break
            self.state.step_started(step.id)
        self._changed.set()

    async def _attempt(self, step: StepPlan) -> tuple[int | None, str | None]:
        attempt = self.state.steps[step.id].attempts
        start = now()
        await self._emit(STEP_START, {
            "step": step.id, "attempt": attempt, "max_attempts": self.state.max_attempts,
            "command": display_command(step.argv, self.plan.workspace)})
        terminator: GroupTerminator | ContainerStopper
        if step.container is None:
            terminator = GroupTerminator(self.grace)
        else:
            # Start-up: a host job's run never loads the container executor.
            from flwd.containers import ContainerStopper

            terminator = ContainerStopper()
        self._terminators[step.id] = terminator
        if self.state.stopping:
            terminator.request()
            if self._force:
                terminator.kill_now()
        exit_code: int | None = None
        error: str | None = None
        data: dict[str, Any] = {"step": step.id}
        try:
            if not isinstance(terminator, GroupTerminator):
                outcome = await self._run_container(step, terminator)
                code = outcome.exit_code
                data.update(outcome.data)
                observed = outcome.data.get("container", {}).get("digest")
                if observed:
                    self._digests.append(observed)
            else:
                code = await run_process_tree(
                    ProcessSpec(argv=step.argv, env=self._environment(step),
                                cwd=self.plan.workspace,
                                marker=("FLWD_STEP_KEY", f"{self.run_id}/{step.id}"),
                                run_id=self.run_id, run_dir=self.run_dir),
                    lambda channel, lines, count: self._output(step.id, channel, lines, count),
                    terminator, secrets=self.plan.binding.secret_values())
            if code < 0:
                data["signal"] = _signal_name(-code)
                code = 128 - code
            exit_code = code
            if self.state.timed_out:
                error = self.state.cancel_reason
            elif terminator.requested and self.state.stopping:
                error = "canceled"
        except StepError as exc:
            error = str(exc)  # names the cause: "interpreter 'pwsh' not found on PATH"
        except OSError as exc:
            error = f"cannot start {step.argv[0]}: {exc.strerror or exc}"
        except FlwdError as exc:
            # The container runtime failed (pull, name conflict): a step result.
            error = f"{exc.problem.code}: {exc.one_line()}"
            data["code"] = exc.problem.code
        finally:
            self._terminators.pop(step.id, None)
        failed = error is not None or exit_code != 0
        data.update({"exit_code": exit_code, "status": "failed" if failed else "completed",
                     "duration_ms": round((now() - start) * 1000)})
        if self.state.stopping and not self.state.timed_out and error == "canceled":
            data["status"] = "canceled"
        if error:
            data["error"] = error
        await self._emit(STEP_FINISH, data)
        return exit_code, error

    # -- files and environment -----------------------------------------------
    def _prepare_run_dir(self) -> None:
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        secrets = self.plan.binding.secrets
        if secrets:
            self._secret_files = write_secret_files(self._secrets_dir, secrets)
        if any(step.bash for step in self.plan.steps):
            values = {k: v for k, v in self.plan.binding.values.items() if k not in secrets}
            text = render_profile(
                profile_levels(self.plan.scripts_root, self.plan.job.dir), values,
                self._secret_files)
            self._profile_path = self.run_dir / "profile.sh"
            fd = os.open(self._profile_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)

    def _remove_secrets(self) -> None:
        if self.plan.binding.secrets:  # also after a write that failed half-way
            remove_secret_files(self.runs_dir, [self.run_id])

    @property
    def _host_env(self) -> Mapping[str, str]:
        # A thin client's run starts from its environment, as it would in its own process.
        return inherited_environment() if self.plan.host_env is None else self.plan.host_env

    def _environment(self, step: StepPlan) -> dict[str, str]:
        """The environment of a host step: secrets as paths of the files on the host."""
        return step_environment(
            self.plan, step, run_id=self.run_id, run_dir=self.run_dir, host_env=self._host_env,
            secret_files=self._secret_files, in_container=False,
            bash_env=self._profile_path if step.bash else None, local_access=self.local_access)

    # -- container steps -----------------------------------------------------------
    async def _run_container(self, step: StepPlan, stopper: ContainerStopper) -> StepOutcome:
        """Run a container step: its spec and environment from the plan, then the container."""
        from flwd.containers import (
            SECRETS_MOUNT,
            ContainerSpec,
            container_name,
            run_container_step,
        )

        plan, container = self.plan, step.container
        assert container is not None and plan.runtime is not None
        secret_names = list(self._secret_files)
        spec = ContainerSpec(
            name=container_name(self.run_id, step.id), run_id=self.run_id, step_id=step.id,
            image=container.image, command=step.argv, job_dir=plan.job.dir,
            run_dir=self.run_dir, network=container.network,
            rootfs_writable=container.rootfs_writable, capabilities=container.capabilities,
            cpu_millis=container.cpu_millis, memory_bytes=container.memory_bytes,
            extra_args=container.extra_args,
            secrets_dir=self._secrets_dir if secret_names else None)
        # Inside the container the secret files are at the read-only mount.
        env = step_environment(
            plan, step, run_id=self.run_id, run_dir=self.run_dir, host_env=self._host_env,
            secret_files={name: f"{SECRETS_MOUNT}/{name}" for name in secret_names},
            in_container=True)
        origin = plan.job.origin or {}
        return await run_container_step(
            plan.runtime, spec, env=env, secrets=plan.binding.secret_values(),
            learn_digest=plan.job.is_addon and not origin.get("digest"),
            sink=lambda channel, lines, count: self._output(step.id, channel, lines, count),
            stopper=stopper, grace=self.grace, observer=self.observer)
