"""CLI overhead: `flwd demo --name x` vs the script run directly vs just / task running it.

Medians of >= 20 whole-process runs each, interleaved, in the same run. flwd runs the
bundled workspace's demo in two workspaces: the bundled jobs with fillers to 8 jobs, and
to 1,001 (a run must not cost more in a bigger workspace: issue 17's run index). Their
files are dated an hour back, as a workspace whose configs are not being edited (flwd
trusts no index over files modified in the last two seconds). just and task come from
PyPI (rust-just, go-task-bin: `pip install -e '.[bench]'`); they are skipped, and said
so, when missing.

Beside them, the floors under a standalone run: a Python process that imports trio and
enters ``trio.run`` (flwd's engine is trio), and one that also defines a pydantic model
(a job's config is one); and the 8-job demo with ``FLWD_CODE_CACHE=0`` (no cache of the
code classes compile at import, flwd/_codecache.py).

The 8-job demo is also timed through the local daemon: a `flwd :serve` owns another data
dir on the same workspace, and flwd's thin client hands the run to it over its Unix
socket (issue 17's target: at most 0.6x go-task's time in the same run); so are `flwd
:jobs` and `flwd :runs` on that data dir, through the daemon and in flwd's own process
(`FLWD_LOCAL=1`), beside each other. `--no-daemon` leaves them out.

The development install is editable: setuptools' finder for it, imported by ``site`` at
every Python start, costs ~12 ms (pathlib, importlib.util…), which no user's install
has. So the flwd commands are also timed as ``pip install`` installs flwd: a wheel built
from this checkout, installed without its dependencies into a throw-away venv that sees
the development venv's packages (a ``.pth``), with pip's own console script
(``--no-wheel`` leaves that out, e.g. without access to the build backend's index).
The targets are checked on that install when it is there.

    python bench/cli_overhead.py [--runs N] [--no-daemon] [--no-wheel]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    REPO,
    header,
    median,
    percentile,
    record,
    start_server,
    time_command,
    tool,
    write_job,
)

SCRIPT = "scripts/demo/100_main.sh"
#: The goals of issue 17 for the standalone path (no server).
TASK_TARGET = 2.5
GROWTH_TARGET = 1.1
#: ... and through the local daemon: at most this times go-task's time.
DAEMON_TARGET = 0.6
DAEMON = "flwd demo (local daemon)"
DAEMON_BIG = "flwd demo (local daemon, 1,001 jobs)"
#: The verbs timed through the daemon and locally, on the same data dir.
VERBS = (":jobs", ":runs")


NO_CODE_CACHE = "flwd demo (8 jobs, no code cache)"
TRIO_FLOOR = "python: import trio; trio.run"
TRIO_PYDANTIC_FLOOR = "python: + a pydantic model"
_MODEL_FLOOR = ("import trio, pydantic\n"
                "class Model(pydantic.BaseModel):\n    x: int = 0\n"
                "trio.run(trio.sleep, 0)")


def workspace(root: Path, jobs: int) -> Path:
    """The bundled scripts, with filler jobs up to ``jobs`` jobs, dated an hour back."""
    shutil.copytree(REPO / "scripts", root / "scripts")
    bundled = sum(1 for _ in (root / "scripts").rglob("config.d/config.yaml"))
    for number in range(jobs - bundled):
        write_job(root, f"filler/job{number:04d}",
                  f"job: {{summary: filler {number}}}\nargspec:\n  args:\n"
                  f"    - {{name: name, type: string}}\n",
                  {"100_main.sh": 'echo "$ARG_NAME"\n'})
    past = time.time() - 3600
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.utime(Path(folder) / name, (past, past))
    return root


def installed_flwd(tmp: Path) -> Path | None:
    """``flwd`` as pip installs it (see the module docstring), or None when the wheel
    cannot be built here (it says why)."""
    wheels, venv = tmp / "wheel", tmp / "installed"
    # Not the checkout on PYTHONPATH: pip would take flwd for installed already.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    try:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                        str(wheels), str(REPO)], check=True, timeout=600,
                       capture_output=True, env=env)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                       timeout=120, env=env)
        python = venv / "bin" / "python"
        subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                        "--no-deps", "--no-index", *map(str, wheels.glob("flwd-*.whl"))],
                       check=True, timeout=300, capture_output=True, env=env)
        if not (venv / "bin" / "flwd").exists():
            raise OSError("pip installed no flwd command")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        print(f"flwd as installed by pip: skipped ({exc}; {detail.decode()[-300:]})")
        return None
    site = next((venv / "lib").glob("python3*/site-packages"))
    ours = next(Path(sys.prefix, "lib").glob("python3*/site-packages"))
    # Its dependencies from the development venv; flwd itself is the installed copy (the
    # editable finder's .pth is not read: .pth files are read in site dirs only).
    (site / "zz-dev-venv.pth").write_text(f"{ours}\n")
    return venv / "bin" / "flwd"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--no-daemon", action="store_true",
                        help="leave out the run through a local flwd :serve")
    parser.add_argument("--no-wheel", action="store_true",
                        help="time the editable install only (no wheel is built)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flwd-bench-") as tmp, ExitStack() as stack:
        env = {**os.environ, "NO_COLOR": "1", "FLWD_DATA_DIR": str(Path(tmp) / "data")}
        direct_env = {**env, "name": "x", "loud": "false"}
        (Path(tmp) / "justfile").write_text(
            f"demo:\n    name=x loud=false bash {REPO / SCRIPT}\n")
        (Path(tmp) / "Taskfile.yml").write_text(
            "version: '3'\ntasks:\n  demo:\n    cmds:\n"
            f"      - name=x loud=false bash {REPO / SCRIPT}\n")
        small = workspace(Path(tmp) / "ws8", 8)
        big = workspace(Path(tmp) / "ws1001", 1001)
        editable = [str(Path(sys.executable).parent / "flwd"), "demo", "--name", "x"]
        installed = None if options.no_wheel else installed_flwd(Path(tmp))
        # The targets are checked on what a user installs, when it could be built.
        flwd = editable if installed is None else [str(installed), *editable[1:]]
        python = sys.executable if installed is None else str(installed.parent / "python")
        commands: list[tuple[str, list[str], Path, dict[str, str]]] = [
            ("bash 100_main.sh (direct)", ["bash", SCRIPT], REPO, direct_env),
            ("python -c pass (floor)", [sys.executable, "-c", "pass"], REPO, env),
            # What any trio-based process costs before it does anything of its own: the
            # floor under the standalone run (its engine is trio; issue 17's analysis: ~189
            # ms on its VM), and with one pydantic model, as a job's validated config is
            # (a model's class imports pydantic's internals; plugins off, as flwd has them).
            (TRIO_FLOOR, [python, "-c", "import trio; trio.run(trio.sleep, 0)"],
             REPO, env),
            (TRIO_PYDANTIC_FLOOR, [python, "-c", _MODEL_FLOOR], REPO,
             {**env, "PYDANTIC_DISABLE_PLUGINS": "__all__"}),
            ("flwd demo (8 jobs)", flwd, small, env),
            ("flwd demo (1,001 jobs)", flwd, big, env),
            # The same without the cache of the code classes compile (flwd/_codecache.py).
            (NO_CODE_CACHE, flwd, small, {**env, "FLWD_CODE_CACHE": "0"}),
        ]
        if installed is not None:
            commands += [
                ("python -c pass (installed)", [str(installed.parent / "python"), "-c", "pass"],
                 REPO, env),
                ("flwd demo (8 jobs, editable)", editable, small, env)]
        if not options.no_daemon:  # the same command line, on a data dir a server owns
            served = Path(tmp) / "daemon-data"
            stack.callback(start_server(small, served).stop)
            daemon_env = {**env, "FLWD_DATA_DIR": str(served)}
            commands.append((DAEMON, flwd, small, daemon_env))
            # ... and one on the big workspace: a run checks its job's files, not the tree.
            served_big = Path(tmp) / "daemon-data-1001"
            stack.callback(start_server(big, served_big).stop)
            commands.append((DAEMON_BIG, flwd, big, {**env, "FLWD_DATA_DIR": str(served_big)}))
            if installed is not None:
                commands.append((f"{DAEMON[:-1]}, editable)", editable, small, daemon_env))
            for verb in VERBS:
                argv = [flwd[0], verb]
                commands += [(f"flwd {verb} (local daemon)", argv, small, daemon_env),
                             (f"flwd {verb} (local)", argv, small,
                              {**daemon_env, "FLWD_LOCAL": "1"})]
        just, task = tool("just"), tool("task")
        if just:
            commands.append(("just demo", [just, "--justfile", str(Path(tmp) / "justfile"),
                                           "demo"], Path(tmp), env))
        if task:
            commands.append(("task demo", [task, "--taskfile", str(Path(tmp) / "Taskfile.yml"),
                                           "demo"], Path(tmp), env))
        timings: dict[str, list[float]] = {name: [] for name, *_ in commands}
        for _ in range(2):  # warm the page cache, the Core DB and flwd's run index
            for _name, argv, cwd, cmd_env in commands:
                time_command(argv, cwd=cwd, env=cmd_env)
        load = os.getloadavg()
        for _ in range(options.runs):
            for name, argv, cwd, cmd_env in commands:
                timings[name].append(time_command(argv, cwd=cwd, env=cmd_env))
        load = tuple(max(a, b) for a, b in zip(load, os.getloadavg(), strict=True))
        header(f"cli_overhead (median of {options.runs} runs, interleaved)")
        print("flwd: " + ("the editable install" if installed is None else
                          "installed from a wheel by pip (the editable install: marked)"))
        print("load average (1, 5, 15 min; the higher of before and after): "
              + ", ".join(f"{value:.2f}" for value in load))
        base = median(timings["bash 100_main.sh (direct)"])
        print(f"{'command':30} {'median ms':>10} {'p95 ms':>8} {'overhead ms':>12}")
        for name, values in timings.items():
            print(f"{name:30} {median(values) * 1000:10.1f} {percentile(values, 0.95) * 1000:8.1f} "
                  f"{(median(values) - base) * 1000:12.1f}")
        ours, grown = median(timings["flwd demo (8 jobs)"]), median(timings["flwd demo (1,001 jobs)"])
        record("cli_overhead", "flwd demo --name x, 8 jobs (median)", ours * 1000, "ms",
               baseline=("bash script direct", base * 1000))
        growth = grown / ours
        print(f"flwd, 1,001 jobs vs 8: {growth:.2f}x (target <= {GROWTH_TARGET}x)")
        record("cli_overhead", "flwd demo, 1,001 jobs vs 8 (ratio of medians)", growth, "x",
               baseline=("8 jobs", 1.0), target=f"<= {GROWTH_TARGET}x",
               met=growth <= GROWTH_TARGET)
        for name in ("just demo", "task demo"):
            if name in timings:
                record("cli_overhead", f"{name} (median)", median(timings[name]) * 1000, "ms",
                       baseline=("bash script direct", base * 1000))
        if task:
            versus = ours / median(timings["task demo"])
            print(f"flwd (8 jobs) vs task: {versus:.2f}x (target <= {TASK_TARGET}x)")
            record("cli_overhead", "flwd demo vs task demo (ratio of medians)", versus, "x",
                   baseline=("task demo", 1.0), target=f"<= {TASK_TARGET}x",
                   met=versus <= TASK_TARGET)
        versus = ours / median(timings[NO_CODE_CACHE])
        print(f"flwd (8 jobs) with the code cache vs without: {versus:.2f}x")
        record("cli_overhead", "flwd demo with the code cache vs FLWD_CODE_CACHE=0 (ratio of "
               "medians)", versus, "x", baseline=("FLWD_CODE_CACHE=0", 1.0))
        if task:
            for floor in (TRIO_FLOOR, TRIO_PYDANTIC_FLOOR):
                versus = median(timings[floor]) / median(timings["task demo"])
                print(f"{floor} vs task: {versus:.2f}x (the standalone run cannot go under it)")
                record("cli_overhead", f"{floor} vs task demo (ratio of medians)", versus, "x",
                       baseline=("task demo", 1.0))
        if task and DAEMON in timings:
            versus = median(timings[DAEMON]) / median(timings["task demo"])
            print(f"flwd (8 jobs) through the local daemon vs task: {versus:.2f}x "
                  f"(target <= {DAEMON_TARGET}x)")
            record("cli_overhead", "flwd demo through the local daemon vs task demo (ratio of "
                   "medians)", versus, "x", baseline=("task demo", 1.0),
                   target=f"<= {DAEMON_TARGET}x", met=versus <= DAEMON_TARGET)
        if DAEMON_BIG in timings:
            growth = median(timings[DAEMON_BIG]) / median(timings[DAEMON])
            print(f"flwd through the local daemon, 1,001 jobs vs 8: {growth:.2f}x")
            record("cli_overhead", "flwd demo through the local daemon, 1,001 jobs vs 8 (ratio "
                   "of medians)", growth, "x", baseline=("8 jobs", 1.0))
        for verb in VERBS:
            if f"flwd {verb} (local daemon)" in timings:
                versus = (median(timings[f"flwd {verb} (local daemon)"])
                          / median(timings[f"flwd {verb} (local)"]))
                print(f"flwd {verb} through the local daemon vs in its own process: "
                      f"{versus:.2f}x")
                record("cli_overhead", f"flwd {verb} through the local daemon vs local (ratio "
                       "of medians)", versus, "x", baseline=(f"flwd {verb} local", 1.0))
        if just:
            print(f"flwd (8 jobs) vs just: {ours / median(timings['just demo']):.1f}x")
        for missing, found in (("just (rust-just)", just), ("task (go-task-bin)", task)):
            if not found:
                print(f"{missing}: not installed, skipped (pip install -e '.[bench]')")


if __name__ == "__main__":
    main()
