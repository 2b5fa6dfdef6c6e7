"""The container actor: one container of one step, from pull to removal.

::

    Run actor run-01J…
    └── Container actor flwd-run-01J…-100_main.sh     inbox: Stop(force)
        ├── <runtime> run --rm … (own session; stdout/stderr drained as line chunks)
        └── stop ladder (on Stop or cancellation)

Stop ladder (DESIGN §4): ``<rt> stop --time=N`` (TERM to the container's init,
which forwards it; KILL after N seconds) → ``<rt> kill`` if the container is
still there → ``<rt> rm --force`` → until the runtime client has exited,
``rm --force`` again (a container the runtime was still creating when the
stop arrived is caught here) → SIGKILL to the client as the last resort.
``Stop(force=True)`` (a second Ctrl-C) skips the grace.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import trio

from actors import ActorRef, ActorStopped, Inbox
from flwd.errors import ContainerFailed, ContainerNameConflict, FlwdError
from flwd.execute import LineSplitter, pump_lines
from flwd.execute import OutputSink as OutputSink
from flwd.observe import UNOBSERVED, Observer

from ._argv import RUN_LABEL, ContainerSpec, kill_argv, remove_argv, run_argv, stop_argv
from ._runtime import Runtime

#: (channel, lines joined by "\n", line count), as for host processes.

#: Bounds on runtime CLI calls that should be quick (inspect, kill, rm).
_QUICK = 15.0
#: How long the runtime client gets to exit once its container is gone.
_CLIENT_SETTLE = 10.0
#: Exit status of ``podman run`` / ``docker run`` when the runtime itself failed.
RUNTIME_ERROR = 125


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop the container: gracefully (TERM, grace, KILL), or at once with ``force``."""

    force: bool = False


ContainerRef = ActorRef[Stop]


@dataclass(frozen=True, slots=True)
class ContainerResult:
    exit_code: int
    #: Wall time of the image pull, when the image had to be pulled.
    pull_seconds: float | None
    run_seconds: float
    #: The container was stopped by a Stop message or cancellation.
    stopped: bool


async def _runtime_call(argv: Sequence[str], env: Mapping[str, str],
                        limit: float = _QUICK) -> tuple[int, str]:
    """(exit status, combined output) of a short runtime command; -1 on timeout or no binary."""
    with trio.move_on_after(limit):
        try:
            done = await trio.run_process(list(argv), stdin=subprocess.DEVNULL,
                                          capture_stdout=True, capture_stderr=True,
                                          check=False, env=dict(env))
        except OSError as exc:
            return -1, str(exc)
        output = (done.stdout + done.stderr).decode(errors="replace").strip()
        return done.returncode, output
    return -1, f"timed out after {limit:g}s"


class ContainerActor:
    """Runs ``spec`` with ``runtime``; see the module docstring.

    Start it with ``ref = await nursery.start(actor.run)``; the nursery ends
    when the container is gone, and :attr:`result` holds the outcome (or
    :meth:`run` raised ``ContainerFailed`` / ``ContainerNameConflict``).
    """

    def __init__(self, runtime: Runtime, spec: ContainerSpec, sink: OutputSink, *,
                 grace: float, secrets: Sequence[str] = (),
                 client_env: Mapping[str, str] | None = None,
                 observer: Observer = UNOBSERVED) -> None:
        self.runtime = runtime
        #: Told of the image pull, when the image had to be pulled.
        self.observer = observer
        self.spec = spec
        self.sink = sink
        self.grace = grace
        self.secrets = [s.encode() for s in secrets if s]
        # The runtime CLI needs the host's environment (CONTAINERS_CONF,
        # XDG_RUNTIME_DIR for rootless podman …), never the job's.
        self.client_env = dict(os.environ if client_env is None else client_env)
        self.result: ContainerResult | None = None
        self._stop = trio.Event()
        self._kill_now = trio.Event()
        self._ladder_done: trio.Event | None = None

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    # -- actor shell -------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[ContainerRef] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Pull if needed, run, stream output, and serve Stop messages meanwhile.

        Cancellation: the stop ladder runs (shielded, bounded by the grace plus
        a few runtime calls) and the container is removed before ``Cancelled``
        propagates.

        Raises:
            ContainerFailed: the image cannot be pulled.
            ContainerNameConflict: a container flwd did not start holds the name.
        """
        failure: FlwdError | None = None
        with Inbox[Stop](f"container {self.spec.name}", 4) as inbox:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._serve, inbox)
                task_status.started(inbox.ref)
                try:
                    self.result = await self._execute()
                except FlwdError as exc:
                    # Raised outside the nursery: callers see the error itself,
                    # not an exception group around it.
                    failure = exc
                finally:
                    nursery.cancel_scope.cancel(reason="container finished")
        if failure is not None:
            raise failure

    async def _serve(self, inbox: Inbox[Stop]) -> None:
        async for message in inbox:
            if message.force:
                self._kill_now.set()
            self._stop.set()

    # -- execution ---------------------------------------------------------------
    async def _execute(self) -> ContainerResult:
        pull_seconds = await self._ensure_image()
        argv = run_argv(self.runtime.path, self.spec)
        started = trio.current_time()
        returncode: int | None = None
        try:
            async with trio.open_nursery() as nursery:
                process: trio.Process = await nursery.start(partial(
                    trio.run_process, argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, check=False, start_new_session=True,
                    env=self.client_env, deliver_cancel=self._deliver_cancel))
                assert process.stdout is not None and process.stderr is not None
                async with trio.open_nursery() as pumps:
                    pumps.start_soon(pump_lines, process.stdout, "stdout",
                                     LineSplitter(self.secrets), self.sink)
                    pumps.start_soon(pump_lines, process.stderr, "stderr",
                                     LineSplitter(self.secrets), self.sink)
                    async with trio.open_nursery() as watcher:
                        watcher.start_soon(self._stop_on_request, process)
                        returncode = await process.wait()
                        watcher.cancel_scope.cancel(reason="container exited")
                    # Once the client is gone the pipes reach EOF at once,
                    # unless a stray process inherited them.
                    pumps.cancel_scope.deadline = trio.current_time() + _CLIENT_SETTLE
        finally:
            if self._stop.is_set() or returncode is None:
                with trio.CancelScope(shield=True):
                    await self._remove()
        elapsed = trio.current_time() - started
        assert returncode is not None
        if returncode == RUNTIME_ERROR and not self._stop.is_set():
            await self._check_conflict()
        return ContainerResult(returncode, pull_seconds, elapsed, self._stop.is_set())

    async def _ensure_image(self) -> float | None:
        """Pull the image when it is not present (runs use ``--pull=never``)."""
        rt, image = self.runtime.path, self.spec.image
        probe = [rt, "image", "exists", image] if self.runtime.is_podman else [
            rt, "image", "inspect", "--format", "{{.Id}}", image]
        code, _ = await _runtime_call(probe, self.client_env)
        if code == 0:
            return None
        started = trio.current_time()
        code, output = await _runtime_call([rt, "pull", image], self.client_env, limit=900)
        self.observer.image_pulled("ok" if code == 0 else "error",
                                   trio.current_time() - started)
        if code != 0:
            last = output.splitlines()[-1] if output else f"exit status {code}"
            raise ContainerFailed(f"cannot pull image {image}: {last}",
                                  hint="check the image reference and the registry, or "
                                       "load the image into the runtime beforehand")
        return trio.current_time() - started

    async def _check_conflict(self) -> None:
        rt, name = self.runtime.path, self.spec.name
        code, output = await _runtime_call(
            [rt, "container", "inspect", "--format", "{{json .Config.Labels}}", name],
            self.client_env)
        if code != 0:
            return
        try:
            labels = json.loads(output.splitlines()[0]) or {}
        except (ValueError, IndexError):
            labels = {}
        if labels.get(RUN_LABEL) == self.spec.run_id:
            await self._remove()
            return
        raise ContainerNameConflict(
            f"container name {name} is held by another container",
            hint=f"remove it ({self.runtime.kind} rm -f {name}) or fix the runtime so "
                 "rm --force succeeds", container=name)

    # -- stopping ------------------------------------------------------------------
    async def _stop_on_request(self, process: trio.Process) -> None:
        await self._stop.wait()
        await self._stop_ladder(process)

    async def _deliver_cancel(self, process: trio.Process) -> None:
        self._stop.set()
        await self._stop_ladder(process)

    async def _stop_ladder(self, process: trio.Process) -> None:
        """Stop, kill, remove; once, however many times it is asked for."""
        if self._ladder_done is not None:
            await self._ladder_done.wait()
            return
        self._ladder_done = done = trio.Event()
        rt, name, env = self.runtime.path, self.spec.name, self.client_env
        try:
            with trio.CancelScope(shield=True):
                if not self._kill_now.is_set():
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(_cancel_when_set, self._kill_now, nursery.cancel_scope)
                        await _runtime_call(stop_argv(rt, name, self.grace), env,
                                            limit=self.grace + _QUICK)
                        nursery.cancel_scope.cancel(reason="stopped")
                if process.returncode is None:
                    await _runtime_call(kill_argv(rt, name), env)
                await self._remove()
                with trio.move_on_after(_CLIENT_SETTLE):
                    while process.returncode is None:
                        with trio.move_on_after(0.25):
                            await process.wait()
                        if process.returncode is None:
                            # The runtime may have created the container after
                            # our rm (a stop that raced the start).
                            await self._remove()
                if process.returncode is None:
                    try:
                        os.killpg(process.pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
        finally:
            done.set()

    async def _remove(self) -> None:
        await _runtime_call(remove_argv(self.runtime.path, self.spec.name,
                                        podman=self.runtime.is_podman), self.client_env)


async def _cancel_when_set(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel(reason="kill requested")


class ContainerStopper:
    """A step's handle on its container actor with the interface of ``GroupTerminator``.

    Lets the run actor treat process trees and containers alike: ``request()``
    stops gracefully, ``kill_now()`` skips the grace.
    """

    def __init__(self) -> None:
        self.ref: ContainerRef | None = None
        self._requested = False
        self._force = False

    @property
    def requested(self) -> bool:
        return self._requested

    def attach(self, ref: ContainerRef) -> None:
        self.ref = ref
        if self._requested:
            self._send(Stop(self._force))

    def request(self) -> None:
        self._requested = True
        self._send(Stop(False))

    def kill_now(self) -> None:
        self._requested = self._force = True
        self._send(Stop(True))

    def _send(self, message: Stop) -> None:
        if self.ref is None:
            return
        try:
            self.ref.cast_nowait(message)
        except trio.WouldBlock:
            pass  # a full inbox already holds stop requests
        except ActorStopped:
            pass  # the container is already gone
