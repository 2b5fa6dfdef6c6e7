"""Completion latency (SC703, reference §14.2): `flwd __complete 2 cmd` on 1000 jobs.

The workspace has 1000 jobs `scripts/cmd0000` … `cmd0999` (each a config with one
string argument `mode`, enum prod|staging, a steps list, and a run.sh), so the
call completes the segment prefix `cmd` at the root into 1000 NDJSON candidates.

- whole process: `flwd __complete 2 cmd` run --calls times (default 1000) through the
  console script, stdout discarded, the job index cache warmed first. This is what
  a shell pays on TAB. Targets: p50 <= 20 ms, p95 <= 30 ms, p99 <= 60 ms.
- in process (what the reference's Go test measures): the index loaded once, then
  50 warm-up and 1200 timed calls of resolve + NDJSON encode. Reference thresholds:
  p50 <= 25 ms, p95 <= 60 ms, p99 <= 120 ms. Also timed: a full fast-path call
  in process (read the cache, stat-check it, resolve, encode).
- floors, on the same machine and interleaved with the calls above: `python -c
  pass` (interpreter + site, which in an editable install runs setuptools' import
  finder), `python -S -c pass`, and the same `__complete` call under `python -S`
  with the repository on sys.path (what the site machinery costs it).

Percentile q is the element at ceil(q*n) - 1 of the sorted timings. Child processes
run with Python's default bytecode caching (PYTHONDONTWRITEBYTECODE is removed from
their environment) as an installed flwd would.

    python bench/completion_latency.py [--calls N] [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, header, percentile, record, write_job

CONFIG = """\
job:
  id: {name}
  name: {name}
argspec:
  args:
    - name: mode
      type: string
      enum: [prod, staging]
composition: steps
steps:
  - id: run
    script: run.sh
"""


def build_workspace(root: Path, count: int) -> None:
    for number in range(count):
        name = f"cmd{number:04d}"
        write_job(root, name, CONFIG.format(name=name), {"run.sh": "#!/bin/sh\necho run\n"})


def time_process(argv: Sequence[str], *, cwd: Path, env: dict[str, str]) -> float:
    """Wall time of one run of ``argv`` (seconds), stdout discarded."""
    start = time.perf_counter()
    done = subprocess.run(list(argv), cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(argv)}\n"
                         f"{done.stderr.decode(errors='replace')}")
    return elapsed


def time_calls(function: Callable[[], object], calls: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        function()
    timings = []
    for _ in range(calls):
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return timings


def row(name: str, timings: Sequence[float], targets: tuple[float, float, float] | None) -> None:
    p50, p95, p99 = (percentile(timings, q) * 1000 for q in (0.50, 0.95, 0.99))
    verdict = ""
    if targets is not None:
        within = p50 <= targets[0] and p95 <= targets[1] and p99 <= targets[2]
        verdict = (f"  target {targets[0]:g}/{targets[1]:g}/{targets[2]:g}: "
                   f"{'met' if within else 'NOT met'}")
    print(f"{name:44} {len(timings):6d} {p50:8.2f} {p95:8.2f} {p99:8.2f}{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000, help="whole-process calls (1000)")
    parser.add_argument("--jobs", type=int, default=1000, help="jobs in the workspace (1000)")
    options = parser.parse_args()
    flwd = Path(sys.executable).parent / "flwd"
    floor_calls = max(100, options.calls // 5)

    with tempfile.TemporaryDirectory(prefix="flwd-bench-") as tmp:
        workspace = Path(tmp) / "ws"
        data_dir = Path(tmp) / "data"
        build_workspace(workspace, options.jobs)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("FLWD_") and k != "PYTHONDONTWRITEBYTECODE"}
        env["FLWD_DATA_DIR"] = str(data_dir)
        argv = [str(flwd), "__complete", "2", "cmd"]

        warm = subprocess.run(argv, cwd=workspace, env=env, capture_output=True, text=True,
                              check=True)  # builds and caches the index
        candidates = len(warm.stdout.splitlines())
        if candidates != options.jobs:
            raise SystemExit(f"expected {options.jobs} candidates, got {candidates}: "
                             f"{warm.stderr}")
        size = sum(p.stat().st_size for p in (data_dir / "completion").iterdir())

        # The same fast path without `site` (the repository put on sys.path by hand):
        # how much of the whole-process figure is the interpreter's site machinery.
        no_site = [sys.executable, "-S", "-c",
                   f"import sys; sys.path.insert(0, {str(REPO)!r}); sys.argv[1:] = "
                   "['__complete', '2', 'cmd']; from flwd._entry import main; main()"]
        others: dict[str, list[str]] = {
            "floor": [sys.executable, "-c", "pass"],
            "floor -S": [sys.executable, "-S", "-c", "pass"],
            "no site": no_site,
        }
        # Interleaved, so that whatever else the machine does weighs on every series.
        whole: list[float] = []
        timings: dict[str, list[float]] = {name: [] for name in others}
        every = max(1, options.calls // floor_calls)
        for call in range(options.calls):
            whole.append(time_process(argv, cwd=workspace, env=env))
            if call % every == 0:
                for name, command in others.items():
                    timings[name].append(time_process(command, cwd=workspace, env=env))
        floor, floor_s, no_site_timings = (timings[name] for name in others)

        os.chdir(workspace)  # the in-process variants resolve the workspace like flwd does
        os.environ.pop("FLWD_SCRIPTS", None)
        from flwd.complete import complete, encode, load_index

        root = str(workspace / "scripts")
        index = load_index(root, str(data_dir))
        assert index is not None
        resolve = time_calls(lambda: encode(complete(index, ["cmd"])), 1200, 50)
        fast_path = time_calls(
            lambda: encode(complete(load_index(root, str(data_dir)), ["cmd"])), 1200, 50)

    header(f"completion_latency ({options.jobs} jobs, `flwd __complete 2 cmd` → "
           f"{candidates} candidates; index cache {size / 1024:.0f} KiB)")
    print(f"{'':44} {'calls':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    row("flwd __complete 2 cmd (whole process)", whole, (20, 30, 60))
    row("  floor: python -c pass", floor, None)
    row("  floor: python -S -c pass", floor_s, None)
    row("  same fast path under python -S (no site)", no_site_timings, None)
    row("in process: resolve + encode (SC703)", resolve, (25, 60, 120))
    row("in process: read cache + stat check + both", fast_path, None)
    floor_p50 = percentile(floor, 0.5) * 1000
    for label, timings_, targets in (("whole process", whole, (20, 30, 60)),
                                     ("in process (SC703)", resolve, (25, 60, 120))):
        for q, goal in zip((0.50, 0.95, 0.99), targets, strict=True):
            value = percentile(timings_, q) * 1000
            record("completion_latency", f"{label} p{round(q * 100)}", value, "ms",
                   baseline=("python -c pass p50", floor_p50) if label == "whole process"
                   else None, target=f"<= {goal} ms", met=value <= goal)
    overhead = percentile(whole, 0.5) - percentile(floor, 0.5)
    print(f"flwd's own cost over `python -c pass` at p50: {overhead * 1000:.2f} ms")


if __name__ == "__main__":
    main()
