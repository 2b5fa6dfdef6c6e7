"""The process executor: one script run in its own session, output drained as line chunks.

The step's leader is started by the process keeper, contained (see ``_contain``):
in its own cgroup, or below the keeper, a child subreaper. Cancellation ladder
(DESIGN §4): SIGTERM to every process of the step → wait up to *grace* for all
of them to exit → SIGKILL (``cgroup.kill``) → repeated until none is left.
Finding the step's processes costs the size of its tree, never a scan of the
host's ``/proc``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from ._contain import ContainmentError, Launch, StepTree, signal_all, start_leader
from ._keeper import STAGE_CGROUP, STAGE_CWD, STAGE_EXEC, KeeperLost, StartFailed
from ._lines import LineSplitter
from ._pump import OutputSink, pump_lines
from ._start import StepError, explain, resolve_program

_POLL = 0.02
#: How long SIGKILLed processes get to vanish, and how long pipes get to reach
#: EOF once every process is gone, before we stop waiting for them.
_KILL_SETTLE = 2.0
_STAGES = {STAGE_CWD: "cwd", STAGE_CGROUP: "cgroup", STAGE_EXEC: "exec"}


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    #: (key, value) every process of this step carries in its environment.
    marker: tuple[str, str]
    #: Names the step's cgroup (``flwd-<run id>-<n>``); recovery finds it by it.
    run_id: str = ""
    #: Where the step is recorded for recovery (None: not recorded).
    run_dir: Path | None = None


class GroupTerminator:
    """Terminates one step's process tree, once, with the TERM → grace → KILL ladder.

    ``request()`` starts the ladder from any task (cancel request, timeout);
    ``kill_now()`` skips what is left of the grace (second Ctrl-C).
    """

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.tree: StepTree | None = None
        self._requested = trio.Event()
        self._kill_now = trio.Event()
        self._term_deadline: float | None = None
        #: Set once nothing of the tree was left: it cannot grow back.
        self._gone = False

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    def request(self) -> None:
        self._requested.set()

    def kill_now(self) -> None:
        self._requested.set()
        self._kill_now.set()

    def attach(self, tree: StepTree) -> None:
        self.tree = tree

    async def terminate(self) -> None:
        """Run the ladder until no process of the step is left.

        Idempotent: a second call continues the same grace period instead of
        starting a new one, and returns at once once the tree is known gone.
        Between signals only the step's own tree is looked at (its cgroup, or
        the keeper's descendants), so many concurrent cancels stay cheap.

        Cancellation: callers shield it (``run_process_tree`` does); it is
        bounded by grace + a few seconds.
        """
        tree = self.tree
        if self._gone or tree is None:
            return
        members = tree.members()
        if not members:
            # A process in the middle of exiting is no longer listed but still counts
            # (its cgroup cannot be removed yet): it is gone within moments.
            with trio.move_on_after(_KILL_SETTLE):
                while tree.alive():  # noqa: ASYNC110
                    await trio.sleep(_POLL)
            self._finish(tree)
            return
        if self._term_deadline is None:
            self._term_deadline = trio.current_time() + self.grace
            signal_all(members, signal.SIGTERM)
        with trio.move_on_at(self._term_deadline):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_when_set, self._kill_now, nursery.cancel_scope)
                # No wait() or pidfd tells us when processes that are not our
                # children exit: their cgroup's or tree's state is polled.
                while tree.alive():  # noqa: ASYNC110
                    await trio.sleep(_POLL)
                nursery.cancel_scope.cancel(reason="process tree exited")
        with trio.move_on_after(_KILL_SETTLE):
            # The step's processes again: those forked during the grace period too.
            while members := tree.members():
                tree.kill(members)
                while tree.alive():  # noqa: ASYNC110
                    await trio.sleep(_POLL)
        self._finish(tree)

    def _finish(self, tree: StepTree) -> None:
        self._gone = True
        tree.close()

    async def watch(self) -> None:
        """Wait for a request, then terminate; return when the tree is gone.

        Cancellation: stops waiting; a ladder already running is cut short (the
        caller runs ``terminate`` again, shielded).
        """
        await self._requested.wait()
        await self.terminate()


async def _cancel_when_set(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel(reason="kill requested")


async def _start(spec: ProcessSpec, program: str, stdout: int, stderr: int) -> StepTree:
    try:
        return await start_leader(Launch(
            program=program, argv=spec.argv, env=spec.env, cwd=spec.cwd, run_id=spec.run_id,
            marker=spec.marker, run_dir=spec.run_dir), stdout, stderr)
    except StartFailed as exc:
        raise StepError(explain(exc.errno, stage=_STAGES.get(exc.stage, "other"),
                                argv=spec.argv, env=spec.env, program=program,
                                cwd=spec.cwd)) from None
    except (KeeperLost, ContainmentError) as exc:
        raise StepError(f"cannot start {spec.argv[0]}: {exc}") from None


async def run_process_tree(spec: ProcessSpec, sink: OutputSink, terminator: GroupTerminator,
                           *, secrets: Sequence[str] = ()) -> int:
    """Run ``spec`` to completion and return its exit status.

    The process starts contained (see the module docstring) in a new session
    with stdin from /dev/null and umask 077; stdout and stderr are drained
    concurrently into ``sink`` as redacted line chunks. When the leader exits,
    every other process of the step is terminated too (a job never leaves
    anything behind), then the pipes are drained to EOF. A negative status
    means "killed by that signal".

    Cancellation: on cancellation the tree is terminated with the ladder
    (shielded, bounded by grace + a few seconds) before ``Cancelled`` propagates.

    Raises:
        StepError: the program cannot be started (the message says why), or the
            process keeper died while the step ran (its status is unknown).
    """
    secret_bytes = [s.encode() for s in secrets if s]
    program = resolve_program(spec.argv, spec.env, spec.cwd)
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    try:
        tree = await _start(spec, program, out_write, err_write)
    except BaseException:
        os.close(out_read)
        os.close(err_read)
        raise
    finally:
        # The keeper holds the write ends now: EOF comes when the step's processes close them.
        os.close(out_write)
        os.close(err_write)
    terminator.attach(tree)
    stdout, stderr = trio.lowlevel.FdStream(out_read), trio.lowlevel.FdStream(err_read)
    returncode: int | None = None
    lost: KeeperLost | None = None
    try:
        async with trio.open_nursery() as pumps:
            pumps.start_soon(pump_lines, stdout, "stdout", LineSplitter(secret_bytes), sink)
            pumps.start_soon(pump_lines, stderr, "stderr", LineSplitter(secret_bytes), sink)
            async with trio.open_nursery() as watcher:
                watcher.start_soon(terminator.watch)
                try:
                    returncode = os.waitstatus_to_exitcode(await tree.keeper.wait(tree.leader))
                except KeeperLost as exc:
                    lost = exc
                watcher.cancel_scope.cancel(reason="leader exited")
            with trio.CancelScope(shield=True):
                await terminator.terminate()
            # Every process is gone, so the pipes reach EOF at once unless a
            # stranger inherited them; do not wait for it forever.
            pumps.cancel_scope.deadline = trio.current_time() + _KILL_SETTLE
    finally:
        if returncode is None:
            tree.keeper.forget(tree.leader)
        with trio.CancelScope(shield=True):
            await terminator.terminate()
            await stdout.aclose()
            await stderr.aclose()
    if lost is not None:
        raise StepError(f"{spec.argv[0]}: {lost}; the step's exit status is unknown")
    assert returncode is not None
    return returncode
