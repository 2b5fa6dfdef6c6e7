"""Cost of one host step in the process executor: spawn, drain, contain, terminate.

Runs ``/bin/true`` as a step N times through ``flwd.execute.run_process_tree`` (what
the run actor calls) and reports wall time and CPU per step: the flwd process's
own CPU and, where a process keeper does the spawning, the keeper's too. It does
so with the host's processes as they are and again with extra idle processes
(``--extra``), because the cost of a ``/proc`` census grows with every process on
the host while containment by cgroup or by the keeper's subtree does not.

    python bench/step_containment.py [--steps N] [--extra 1000] [--mode auto|cgroup|subreaper]

``--mode`` sets ``FLWD_CONTAINMENT`` (ignored by builds without containment).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, record


def _host_processes() -> int:
    return sum(name.isdigit() for name in os.listdir("/proc"))


def _cpu_of(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return 0.0
    fields = raw[raw.rfind(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _keeper_pids() -> list[int]:
    """Children of this process that are a process keeper (they are not steps)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        ppid = int(raw[raw.rfind(b")") + 2:].split()[1])
        if ppid == os.getpid() and any(b"_keeper" in word for word in argv):
            found.append(int(name))
    return found


def measure(steps: int, workdir: Path) -> tuple[float, float, float]:
    """(wall ms, flwd CPU ms, keeper CPU ms) per step, over ``steps`` sequential steps."""
    import trio

    from flwd.execute import GroupTerminator, ProcessSpec, run_process_tree

    async def sink(_channel: str, _lines: bytes, _count: int) -> None:
        return None

    async def main() -> tuple[float, float, float]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}

        def spec(index: int) -> ProcessSpec:
            return ProcessSpec(argv=["/bin/true"], env={**env, "FLWD_STEP_KEY": f"b/{index}"},
                               cwd=workdir, marker=("FLWD_STEP_KEY", f"b/{index}"))

        for index in range(20):  # warm up (and start a keeper, where there is one)
            await run_process_tree(spec(index), sink, GroupTerminator(1.0))
        keepers = _keeper_pids()
        keeper_cpu = sum(_cpu_of(pid) for pid in keepers)
        wall, cpu = time.perf_counter(), time.process_time()
        for index in range(steps):
            code = await run_process_tree(spec(index), sink, GroupTerminator(1.0))
            assert code == 0
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        keeper_cpu = sum(_cpu_of(pid) for pid in keepers) - keeper_cpu
        return wall / steps * 1e3, cpu / steps * 1e3, keeper_cpu / steps * 1e3

    return trio.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--extra", type=int, default=1000,
                        help="idle processes added for the second measurement")
    parser.add_argument("--mode", default=os.environ.get("FLWD_CONTAINMENT", "auto"))
    options = parser.parse_args()
    os.environ["FLWD_CONTAINMENT"] = options.mode
    resource.setrlimit(resource.RLIMIT_NOFILE, resource.getrlimit(resource.RLIMIT_NOFILE))
    header(f"step_containment ({options.steps} sequential /bin/true steps, "
           f"FLWD_CONTAINMENT={options.mode})")
    print(f"{'host processes':>15} {'wall ms/step':>13} {'flwd CPU ms/step':>17} "
          f"{'keeper CPU ms/step':>19}")
    with tempfile.TemporaryDirectory(prefix="flwd-bench-") as tmp:
        rows = []
        idle: list[subprocess.Popen[bytes]] = []
        try:
            for extra in (0, options.extra):
                while len(idle) < extra:
                    idle.append(subprocess.Popen(["sleep", "600"]))
                count = _host_processes()
                wall, cpu, keeper = measure(options.steps, Path(tmp))
                rows.append((count, wall, cpu, keeper))
                print(f"{count:15d} {wall:13.3f} {cpu:17.3f} {keeper:19.3f}")
        finally:
            for process in idle:
                process.kill()
            for process in idle:
                process.wait()
    (few, _, cpu_few, keeper_few), (many, _, cpu_many, keeper_many) = rows
    per_process = ((cpu_many + keeper_many) - (cpu_few + keeper_few)) / (many - few) * 1e3
    print(f"CPU per step per extra host process: {per_process:.2f} us")
    record("step_containment", f"CPU per host step ({few} host processes)",
           round(cpu_few + keeper_few, 3), "ms")
    record("step_containment", "CPU per step per extra host process", round(per_process, 2),
           "us")


if __name__ == "__main__":
    main()
