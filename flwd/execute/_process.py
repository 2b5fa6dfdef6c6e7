"""The process executor: one script run in its own session, output drained as line chunks.

Cancellation ladder (DESIGN §4): SIGTERM to the whole process group (and to
any process that escaped it but carries the step's ``FLWD_RUN_ID``/``FLWD_STEP``)
→ wait up to *grace* for all of them to exit → SIGKILL → a final sweep.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio

from ._lines import LineSplitter
from ._procfs import CensusQuery, census, process_alive
from ._pump import OutputSink, pump_lines

#: Called with (channel, lines joined by "\n", line count) for every chunk.

_POLL = 0.02
#: How long SIGKILLed processes get to vanish, and how long pipes get to reach
#: EOF once every process is gone, before we stop waiting for them.
_KILL_SETTLE = 2.0
#: A /proc census that took less CPU than this last time runs on the trio
#: thread: a worker-thread round trip costs more than scanning a small /proc.
#: On a crowded host scans get dearer and move to a worker thread.
_INLINE_CENSUS = 1e-3


@dataclass(eq=False, slots=True)
class _CensusRequest:
    query: CensusQuery
    answer: list[int] | None = None


@dataclass(eq=False, slots=True)
class _CensusBatcher:
    """Shares /proc scans between concurrent censuses (one per trio run).

    The first requester scans for every request waiting when it starts;
    requests arriving meanwhile wait for the scan after it (a scan that
    already started may have missed their processes).
    """

    waiting: list[_CensusRequest] = field(default_factory=list)
    scanning: trio.Event | None = None
    #: CPU seconds of the last scan; decides inline or worker thread.
    cost: float = 0.0


_BATCHER: trio.lowlevel.RunVar[_CensusBatcher] = trio.lowlevel.RunVar("flwd_census")


def _timed_census(queries: list[CensusQuery]) -> tuple[list[list[int]], float]:
    start = time.thread_time()
    answers = census(queries)
    return answers, time.thread_time() - start


async def take_census(query: CensusQuery) -> list[int]:
    """Every live process of ``query`` (see :func:`census`), sharing scans with other callers.

    Cancellation: a scan in a worker thread is waited for (it is short);
    a caller cancelled while waiting for someone else's scan just leaves.
    """
    try:
        batcher = _BATCHER.get()
    except LookupError:
        batcher = _CensusBatcher()
        _BATCHER.set(batcher)
    request = _CensusRequest(query)
    batcher.waiting.append(request)
    try:
        while request.answer is None:
            if batcher.scanning is not None:
                await batcher.scanning.wait()
                continue
            batch, batcher.waiting = batcher.waiting, []
            done = batcher.scanning = trio.Event()
            try:
                queries = [item.query for item in batch]
                if batcher.cost < _INLINE_CENSUS:
                    answers, batcher.cost = _timed_census(queries)
                else:
                    answers, batcher.cost = await trio.to_thread.run_sync(_timed_census, queries)
                for item, answer in zip(batch, answers, strict=True):
                    item.answer = answer
            finally:
                # Unanswered requests (the scan failed) go to the next scanner.
                batcher.waiting[:0] = [item for item in batch if item.answer is None]
                batcher.scanning = None
                done.set()
    finally:
        if request.answer is None and request in batcher.waiting:
            batcher.waiting.remove(request)
    return request.answer


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    #: (key, value) every process of this step carries in its environment.
    marker: tuple[str, str]


class GroupTerminator:
    """Terminates one step's process tree, once, with the TERM → grace → KILL ladder.

    ``request()`` starts the ladder from any task (cancel request, timeout);
    ``kill_now()`` skips what is left of the grace (second Ctrl-C).
    """

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.pgid: int | None = None
        self.marker: tuple[str, str] | None = None
        self._requested = trio.Event()
        self._kill_now = trio.Event()
        self._term_deadline: float | None = None
        #: Set once a census found nothing left: the tree cannot grow back.
        self._gone = False

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    def request(self) -> None:
        self._requested.set()

    def kill_now(self) -> None:
        self._requested.set()
        self._kill_now.set()

    async def _census(self) -> list[int]:
        """Every live process of the step (its group, and whatever carries its marker)."""
        if self.pgid is None and self.marker is None:
            return []
        return await take_census((self.pgid, self.marker))

    def _signal(self, pids: list[int], sig: signal.Signals) -> None:
        if self.pgid is not None:
            try:
                os.killpg(self.pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    async def terminate(self) -> None:
        """Run the ladder until no process of the step is left.

        Idempotent: a second call continues the same grace period instead of
        starting a new one, and returns at once once the tree is known gone.
        The full /proc census is shared with concurrent callers (one scan
        answers all of them) and runs in a worker thread unless /proc is
        small; while waiting, only the known pids are polled, so many
        concurrent cancels stay cheap.

        Cancellation: callers shield it (``run_process`` does for
        ``deliver_cancel``); it is bounded by grace + a few seconds.
        """
        if self._gone:
            return
        members = await self._census()
        if not members:
            self._gone = True
            return
        if self._term_deadline is None:
            self._term_deadline = trio.current_time() + self.grace
            self._signal(members, signal.SIGTERM)
        with trio.move_on_at(self._term_deadline):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_when_set, self._kill_now, nursery.cancel_scope)
                # Grandchildren are not our children: no wait() or pidfd tells us
                # when they exit, so polling is the only way to know.
                while any(process_alive(pid, None) for pid in members):  # noqa: ASYNC110
                    await trio.sleep(_POLL)
                nursery.cancel_scope.cancel(reason="process tree exited")
        with trio.move_on_after(_KILL_SETTLE):
            # A last census catches processes forked during the grace period.
            while members := await self._census():
                self._signal(members, signal.SIGKILL)
                while any(process_alive(pid, None) for pid in members):  # noqa: ASYNC110
                    await trio.sleep(_POLL)
        self._gone = True

    async def watch(self) -> None:
        """Wait for a request, then terminate; return when the tree is gone."""
        await self._requested.wait()
        await self.terminate()


async def _cancel_when_set(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel(reason="kill requested")


async def run_process_tree(spec: ProcessSpec, sink: OutputSink, terminator: GroupTerminator,
                           *, secrets: Sequence[str] = ()) -> int:
    """Run ``spec`` to completion and return its exit status.

    The process starts in a new session with stdin from /dev/null and umask
    077; stdout and stderr are drained concurrently into ``sink`` as redacted
    line chunks. When the leader exits, every other process of the tree is
    terminated too (a job never leaves anything behind), then the pipes are
    drained to EOF. A negative status means "killed by that signal".

    Cancellation: on cancellation the tree is terminated with the ladder
    (shielded, bounded by grace + a few seconds) before ``Cancelled`` propagates.
    Raises OSError when the program cannot be started.
    """
    secret_bytes = [s.encode() for s in secrets if s]
    terminator.marker = spec.marker
    returncode: int | None = None
    try:
        async with trio.open_nursery() as nursery:
            process: trio.Process = await nursery.start(partial(
                trio.run_process, list(spec.argv),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                check=False, start_new_session=True, umask=0o077,
                env=dict(spec.env), cwd=str(spec.cwd),
                deliver_cancel=lambda _process: terminator.terminate(),
            ))
            # A new session makes the leader its own process group leader.
            terminator.pgid = process.pid
            assert process.stdout is not None and process.stderr is not None
            async with trio.open_nursery() as pumps:
                pumps.start_soon(pump_lines, process.stdout, "stdout", LineSplitter(secret_bytes), sink)
                pumps.start_soon(pump_lines, process.stderr, "stderr", LineSplitter(secret_bytes), sink)
                async with trio.open_nursery() as watcher:
                    watcher.start_soon(terminator.watch)
                    returncode = await process.wait()
                    watcher.cancel_scope.cancel(reason="leader exited")
                with trio.CancelScope(shield=True):
                    await terminator.terminate()
                # Every process is gone, so the pipes reach EOF at once unless a
                # stranger inherited them; do not wait for it forever.
                pumps.cancel_scope.deadline = trio.current_time() + _KILL_SETTLE
    finally:
        with trio.CancelScope(shield=True):
            await terminator.terminate()
    assert returncode is not None
    return returncode
