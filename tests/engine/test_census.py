"""The shared /proc census: concurrent terminators share scans and see every process of a step."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import trio

from flwd.execute import _process
from flwd.execute._procfs import census, live_group_members, processes_with_env

MARKER = "FLWD_STEP_KEY"


def _spawn_tree(key: str) -> subprocess.Popen[bytes]:
    """A group leader with a child in its group and one that escaped it (setsid)."""
    env = {**os.environ, MARKER: key}
    # "ready" once both children are forked (they carry the marker from then on).
    script = "sleep 30 & setsid sleep 31 & echo ready; wait"
    return subprocess.Popen(["bash", "-c", script], env=env, start_new_session=True,
                            stdout=subprocess.PIPE)


def _kill(process: subprocess.Popen[bytes], key: str) -> None:
    for pid in processes_with_env(MARKER, key):
        os.kill(pid, signal.SIGKILL)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


async def _wait_for(process: subprocess.Popen[bytes], count: int, key: str) -> None:
    """Until the tree said it is complete (its "ready" line), then check the census sees it."""
    assert process.stdout is not None
    with trio.fail_after(10):
        assert await trio.to_thread.run_sync(process.stdout.readline) == b"ready\n"
    assert len(processes_with_env(MARKER, key)) == count


@pytest.mark.skipif(sys.platform != "linux", reason="/proc")
async def test_census_equals_group_members_plus_marked_processes() -> None:
    trees = {f"census-{os.getpid()}/{index}": None for index in range(2)}
    processes = {key: _spawn_tree(key) for key in trees}
    try:
        for key, process in processes.items():
            await _wait_for(process, 3, key)
        queries = [(process.pid, (MARKER, key)) for key, process in processes.items()]
        answers = census([*queries, (None, (MARKER, "nobody")), (999_999_999, None)])
        for (pgid, (_, key)), answer in zip(queries, answers, strict=False):
            expected = live_group_members(pgid)
            expected += [p for p in processes_with_env(MARKER, key) if p not in expected]
            assert sorted(answer) == sorted(expected) and len(answer) == 3
        assert answers[-2:] == [[], []]
    finally:
        for key, process in processes.items():
            _kill(process, key)


@pytest.mark.skipif(sys.platform != "linux", reason="/proc")
async def test_concurrent_censuses_share_scans(monkeypatch: pytest.MonkeyPatch) -> None:
    key = f"census-shared-{os.getpid()}"
    process = _spawn_tree(key)
    scans: list[int] = []

    def counting_census(queries: list[_process.CensusQuery]) -> list[list[int]]:
        scans.append(len(queries))
        return census(queries)

    monkeypatch.setattr(_process, "census", counting_census)
    monkeypatch.setattr(_process, "_INLINE_CENSUS", 0.0)  # worker thread: callers overlap
    try:
        await _wait_for(process, 3, key)
        answers: list[list[int]] = []

        async def one() -> None:
            answers.append(await _process.take_census((process.pid, (MARKER, key))))

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(one)
        assert len(answers) == 20 and all(len(answer) == 3 for answer in answers)
        assert sum(scans) == 20 and len(scans) < 20  # every request answered, scans shared
    finally:
        _kill(process, key)
