"""The process executor's containment, in process: the keeper, step cgroups, the subtree.

Real processes, a real keeper and real cgroups (where this process may make them);
``FLWD_CONTAINMENT`` picks the mechanism (the choice is cached per process, so each
test resets it).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from flwd import _keeper_boot
from flwd.execute import (
    GroupTerminator,
    ProcessSpec,
    StepError,
    _cgroup,
    _contain,
    kill_run_processes,
    prelaunch_keeper,
    run_process_tree,
)
from flwd.execute._procfs import descendants, stat

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="/proc, cgroups")

CGROUPS = _cgroup.probe(_cgroup.own_cgroup()) is None
MODES = [pytest.param("cgroup", marks=pytest.mark.skipif(not CGROUPS, reason="no cgroups")),
         "subreaper"]


@pytest.fixture
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    value: str = request.param
    monkeypatch.setenv(_contain.MODE_ENV, value)
    monkeypatch.setattr(_contain, "_setups", {})
    yield value


class Output:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.changed = trio.Event()

    async def sink(self, _channel: str, lines: bytes, _count: int) -> None:
        self.lines += lines.decode().splitlines()
        self.changed.set()
        self.changed = trio.Event()

    async def wait_for(self, text: str) -> None:
        with trio.fail_after(30):
            while text not in self.lines:
                await self.changed.wait()


def spec(tmp_path: Path, script: str, key: str, **overrides: object) -> ProcessSpec:
    env = {"PATH": os.environ["PATH"], "FLWD_STEP_KEY": key}
    values: dict[str, object] = {
        "argv": ["bash", "-c", script], "env": env, "cwd": tmp_path,
        "marker": ("FLWD_STEP_KEY", key), "run_id": f"run-test{os.getpid()}",
        "run_dir": tmp_path, **overrides}
    return ProcessSpec(**values)  # type: ignore[arg-type]


def comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def alive(pid: int) -> bool:
    proc = stat(pid)
    return proc is not None and proc.live


@pytest.mark.parametrize("mode", MODES, indirect=True)
async def test_the_leader_is_contained_before_its_program_runs(tmp_path: Path,
                                                               mode: str) -> None:
    # Its very first act is to read its own cgroup and parent: that is where it started.
    out = Output()
    code = await run_process_tree(
        spec(tmp_path, "", "t/first", argv=["cat", "/proc/self/cgroup", "/proc/self/stat"]),
        out.sink, GroupTerminator(1))
    assert code == 0
    unified = next(line for line in out.lines if line.startswith("0::"))
    if mode == "cgroup":
        assert f"/flwd-run-test{os.getpid()}-" in unified
        # ... and the step cgroup is gone once the step is.
        assert not list(_cgroup.own_cgroup().glob(f"flwd-run-test{os.getpid()}-*"))  # type: ignore[union-attr]
    else:
        assert "flwd-" not in unified
    parent = int(out.lines[-1].rsplit(")", 1)[1].split()[1])
    assert parent != os.getpid()  # the keeper started it, and stays its ancestor
    assert comm(parent) == "flwd-keeper"


@pytest.mark.parametrize("mode", MODES, indirect=True)
async def test_a_leader_starts_with_default_signal_dispositions(tmp_path: Path,
                                                                mode: str) -> None:
    # The keeper ignores SIGINT, SIGHUP and SIGTERM, Python SIGPIPE and SIGXFSZ: none
    # of that may reach a job (ignored dispositions survive exec).
    out = Output()
    code = await run_process_tree(
        spec(tmp_path, "", "t/signals", argv=["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]),
        out.sink, GroupTerminator(1))
    assert code == 0
    assert sorted(out.lines) == ["SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000"]


@pytest.mark.parametrize("mode", MODES, indirect=True)
async def test_a_step_that_cannot_start_says_why(tmp_path: Path, mode: str) -> None:
    async def start(**overrides: object) -> str:
        with pytest.raises(StepError) as caught:
            await run_process_tree(spec(tmp_path, "true", "t/x", **overrides),
                                   Output().sink, GroupTerminator(1))
        return str(caught.value)

    assert await start(argv=["nosuchinterp", "x"]) == "interpreter 'nosuchinterp' not found on PATH"
    missing = tmp_path / "gone"
    assert await start(cwd=missing) == (
        f"cannot start bash: the working directory {missing} does not exist")
    big = {"PATH": os.environ["PATH"], "BIG": "x" * 200_000}
    assert "the environment variable BIG is 200,005 bytes" in await start(env=big)
    plain = tmp_path / "plain"
    plain.write_text("echo hi\n")
    plain.chmod(0o644)
    assert await start(argv=[str(plain)]) == (
        f"cannot start {plain}: permission denied (is {plain} executable?)")
    shebang = tmp_path / "shebang"
    shebang.write_text("#!/nonexistent/interp\necho hi\n")
    shebang.chmod(0o755)
    assert await start(argv=[str(shebang)]) == (
        f"interpreter '/nonexistent/interp' (the #! line of {shebang}) not found")
    if mode == "cgroup":
        assert not list(_cgroup.own_cgroup().glob(f"flwd-run-test{os.getpid()}-*"))  # type: ignore[union-attr]


async def test_an_unknown_containment_mode_is_a_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_contain.MODE_ENV, "jail")
    monkeypatch.setattr(_contain, "_setups", {})
    with pytest.raises(StepError, match="FLWD_CONTAINMENT='jail' is not one of auto, cgroup, "
                                        "subreaper"):
        await run_process_tree(spec(tmp_path, "true", "t/x"), Output().sink, GroupTerminator(1))


ESCAPE = "{prefix} setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $! >{file}; echo ready; {then}"


@pytest.mark.parametrize("mode", ["subreaper"], indirect=True)
async def test_orphans_go_with_the_step_that_owns_them(tmp_path: Path, mode: str) -> None:
    """Concurrent steps under one keeper: an escapee that kept its marker ends with its
    own step; one that cleared its environment too ends when no step that ran when it
    started runs any more (it might be any of theirs)."""
    kept, cleared = tmp_path / "kept", tmp_path / "cleared"
    long_out, short_out = Output(), Output()
    long_step = GroupTerminator(1)

    async def long_running() -> None:
        await run_process_tree(
            spec(tmp_path, ESCAPE.format(prefix="env -i", file=cleared, then="exec sleep 1000"),
                 "t/long"), long_out.sink, long_step)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(long_running)
        await long_out.wait_for("ready")
        # A short step whose escapee keeps FLWD_STEP_KEY: gone when the short step is.
        code = await run_process_tree(
            spec(tmp_path, ESCAPE.format(prefix="", file=kept, then="exit 0"), "t/short"),
            short_out.sink, GroupTerminator(1))
        assert code == 0
        assert not alive(int(kept.read_text()))
        assert alive(int(cleared.read_text()))
        long_step.request()
    assert not alive(int(cleared.read_text()))


@pytest.mark.parametrize("mode", MODES, indirect=True)
async def test_cancel_ends_every_process_of_the_step(tmp_path: Path, mode: str) -> None:
    out = Output()
    terminator = GroupTerminator(0.5)
    script = ESCAPE.format(prefix="env -i", file=tmp_path / "pid",
                           then="trap '' TERM; exec sleep 1000")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_process_tree, spec(tmp_path, script, "t/cancel"), out.sink,
                           terminator)
        await out.wait_for("ready")
        escapee = int((tmp_path / "pid").read_text())
        assert alive(escapee)
        terminator.request()
    assert not alive(escapee)


def test_recovery_finds_the_runs_cgroups_by_name(tmp_path: Path) -> None:
    hierarchy = tmp_path / "cg"
    for path in ["a/flwd-run-1-1", "a/flwd-run-1-2/inner", "b/flwd-run-10-1",
                 "flwd-run-2-1/flwd-run-1-3"]:
        (hierarchy / path).mkdir(parents=True)
    found = _cgroup.find_run_cgroups([_cgroup.Mount("/", hierarchy)], "run-1")
    assert sorted(path.relative_to(hierarchy).as_posix() for path in found) == [
        "a/flwd-run-1-1", "a/flwd-run-1-2", "flwd-run-2-1/flwd-run-1-3"]


def test_the_cgroup2_mount_comes_from_the_mount_table() -> None:
    mountinfo = (
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
        "50 23 0:38 /user.slice /mnt/with\\040space rw shared:9 - cgroup2 cgroup2 rw\n")
    mounts = _cgroup.cgroup2_mounts(mountinfo)
    assert mounts == [_cgroup.Mount("/", Path("/sys/fs/cgroup/unified")),
                      _cgroup.Mount("/user.slice", Path("/mnt/with space"))]
    hybrid = "9:name=systemd:/\n4:memory:/x\n0::/system.slice/flwd.service (deleted)\n"
    path = _cgroup.unified_path(hybrid)
    assert path == "/system.slice/flwd.service"
    assert _cgroup.resolve(mounts, path) == Path(
        "/sys/fs/cgroup/unified/system.slice/flwd.service")
    assert _cgroup.resolve(mounts[1:], "/user.slice/user-1000.slice") == Path(
        "/mnt/with space/user-1000.slice")
    assert _cgroup.resolve(mounts[1:], "/system.slice") is None
    assert _cgroup.unified_path("4:memory:/x\n") is None  # cgroup v1 only


async def test_a_lost_keeper_fails_the_step_and_still_ends_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_contain.MODE_ENV, "subreaper")
    monkeypatch.setattr(_contain, "_setups", {})
    out = Output()
    terminator = GroupTerminator(0.5)
    keeper_pid: list[int] = []

    async def step() -> None:
        with pytest.raises(StepError, match="exit status is unknown"):
            await run_process_tree(spec(tmp_path, "echo ready; exec sleep 1000", "t/lost"),
                                   out.sink, terminator)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(step)
        await out.wait_for("ready")
        assert terminator.tree is not None
        leader = terminator.tree.leader
        keeper_pid.append(terminator.tree.keeper.pid)
        os.kill(keeper_pid[0], signal.SIGKILL)
    assert not alive(leader)


def _ledger(run_dir: Path, **entry: object) -> None:
    from flwd.execute._procfs import boot_id

    run_dir.mkdir(parents=True, exist_ok=True)
    line = {"step": "r/s", "boot": boot_id(), "owner": 1, "keeper": None,
            "keeper_start": None, "cgroup": None, **entry}
    with open(run_dir / _contain.LEDGER, "a") as f:
        f.write(json.dumps(line) + "\n")


def _tree() -> subprocess.Popen[bytes]:
    """A session leader with a child in its session and one that left it, env and all."""
    process = subprocess.Popen(
        ["bash", "-c", "sleep 1000 & env -i setsid sleep 1000 & echo ready; wait"],
        start_new_session=True, stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    return process


def test_recovery_kills_a_recorded_session_and_what_it_started(tmp_path: Path) -> None:
    process = _tree()
    try:
        members = descendants([process.pid])
        assert len(members) == 3
        leader = stat(process.pid)
        assert leader is not None
        _ledger(tmp_path / "run-1", session=process.pid, start=leader.start)
        assert kill_run_processes(["run-1"], tmp_path) == 3
        assert not any(alive(pid) for pid in members)
    finally:
        process.kill()
        process.wait()
        assert process.stdout is not None
        process.stdout.close()


def test_recovery_leaves_a_recycled_session_id_alone(tmp_path: Path) -> None:
    process = _tree()
    try:
        leader = stat(process.pid)
        assert leader is not None
        # The record says session <pid> began earlier: that session is gone, this is
        # another process that got the same pid.
        _ledger(tmp_path / "run-2", session=process.pid, start=leader.start - 100)
        assert kill_run_processes(["run-2"], tmp_path) == 0
        assert all(alive(pid) for pid in descendants([process.pid]))
    finally:
        for pid in descendants([process.pid])[1:]:
            os.kill(pid, signal.SIGKILL)
        process.kill()
        process.wait()
        assert process.stdout is not None
        process.stdout.close()


@pytest.mark.parametrize("forced", [False, True])
async def test_cgroups_that_stop_working_mean_the_keepers_subtree_unless_forced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forced: bool) -> None:
    # A "base" where a directory can be made but no process can join it, as when
    # delegation is revoked or the base cgroup vanished after flwd started.
    base = tmp_path / "not-a-cgroup"
    base.mkdir()
    monkeypatch.setattr(_contain, "_setups", {os.getpid(): _contain._Setup(
        "cgroup", base, None, forced=forced)})
    out = Output()
    run = run_process_tree(spec(tmp_path, "echo ran", "t/fallback"), out.sink,
                           GroupTerminator(1))
    if forced:
        with pytest.raises(StepError, match=r"FLWD_CONTAINMENT=cgroup, but cannot move a "
                                            r"process into .*not-a-cgroup/flwd-"):
            await run
    else:
        assert await run == 0
        assert out.lines == ["ran"]
        assert _contain._setups[os.getpid()].mode == "subreaper"
    assert list(base.iterdir()) == []


@pytest.mark.parametrize("mode", MODES, indirect=True)
async def test_a_prelaunched_keeper_starts_the_first_step(tmp_path: Path, mode: str) -> None:
    # Started before the trio run needs it (the CLI does it before its engine starts),
    # the keeper is the one the first host step's leader is the child of.
    assert _keeper_boot._prelaunched is None
    prelaunch_keeper()
    assert _keeper_boot._prelaunched is not None
    early = _keeper_boot._prelaunched[0]
    prelaunch_keeper()  # one is waiting already: nothing more is started
    assert _keeper_boot._prelaunched[0] == early
    out = Output()
    code = await run_process_tree(
        spec(tmp_path, "", "t/early", argv=["cat", "/proc/self/stat"]), out.sink,
        GroupTerminator(1))
    assert code == 0 and _keeper_boot._prelaunched is None
    assert int(out.lines[-1].rsplit(")", 1)[1].split()[1]) == early
    assert comm(early) == "flwd-keeper"


def test_a_keeper_never_taken_up_leaves_with_its_process() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from flwd import _keeper_boot\n"
                               "_keeper_boot.prelaunch_keeper()\n"
                               "print(_keeper_boot._prelaunched[0])"],
        capture_output=True, text=True, timeout=60, check=True)
    pid = int(done.stdout)
    try:
        exited = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # gone already
    try:  # re-parented, it sees its socket closed and exits at once
        readable, _, _ = select.select([exited], [], [], 30)
        assert readable, f"keeper {pid} outlived its process"
    finally:
        os.close(exited)


_BORN_IN = r'''
import os, sys
sys.path.insert(0, sys.argv[1])
from flwd.execute import _keeper_main
procs = sys.argv[2].encode()
read_end, write_end = os.pipe()
pid = _keeper_main._fork_into(procs)
if pid == 0:
    with open("/proc/self/cgroup", "rb") as f:
        os.write(write_end, f.read())
    os._exit(0)
print("none" if pid is None else "forked")
if pid is not None:
    os.close(write_end)
    os.waitpid(pid, 0)
    print(os.read(read_end, 4096).decode().strip().splitlines()[-1])
'''


@pytest.mark.skipif(not CGROUPS, reason="no cgroups")
def test_a_step_leader_is_born_in_its_cgroup(tmp_path: Path) -> None:
    # clone3(CLONE_INTO_CGROUP): no write to cgroup.procs (an RCU grace period, 5-20 ms
    # of every step's start); where the kernel cannot, None and the keeper moves it.
    base = _cgroup.own_cgroup()
    assert base is not None
    cgroup = base / f"flwd-born-{os.getpid()}"
    cgroup.mkdir()
    repo = str(Path(__file__).resolve().parents[2])
    try:
        done = subprocess.run([sys.executable, "-c", _BORN_IN, repo,
                               str(cgroup / "cgroup.procs")],
                              capture_output=True, text=True, timeout=30, check=True)
        lines = done.stdout.splitlines()
        assert lines[0] == "forked"
        assert lines[1].endswith("/" + cgroup.name), lines
        # Not a cgroup (a plain directory): clone3 refuses, the fallback is taken.
        plain = tmp_path / "plain"
        plain.mkdir()
        done = subprocess.run([sys.executable, "-c", _BORN_IN, repo,
                               str(plain / "cgroup.procs")],
                              capture_output=True, text=True, timeout=30, check=True)
        assert done.stdout.splitlines() == ["none"]
    finally:
        cgroup.rmdir()
