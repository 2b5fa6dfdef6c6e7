"""CLI overhead: `flwd demo --name x` vs the script run directly vs just / task running it.

Medians of >= 20 whole-process runs each, in the same run. just and task come
from PyPI (rust-just, go-task-bin: `pip install -e '.[bench]'`); they are
skipped, and said so, when missing.

    python bench/cli_overhead.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, header, median, percentile, record, time_command, tool

SCRIPT = "scripts/demo/100_main.sh"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flwd-bench-") as tmp:
        env = {**os.environ, "NO_COLOR": "1", "FLWD_DATA_DIR": str(Path(tmp) / "data")}
        direct_env = {**env, "name": "x", "loud": "false"}
        (Path(tmp) / "justfile").write_text(
            f"demo:\n    name=x loud=false bash {REPO / SCRIPT}\n")
        (Path(tmp) / "Taskfile.yml").write_text(
            "version: '3'\ntasks:\n  demo:\n    cmds:\n"
            f"      - name=x loud=false bash {REPO / SCRIPT}\n")
        commands: list[tuple[str, list[str], Path, dict[str, str]]] = [
            ("bash 100_main.sh (direct)", ["bash", SCRIPT], REPO, direct_env),
            ("python -c pass (floor)", [sys.executable, "-c", "pass"], REPO, env),
            ("flwd demo --name x", [str(Path(sys.executable).parent / "flwd"), "demo",
                                    "--name", "x"], REPO, env),
        ]
        just, task = tool("just"), tool("task")
        if just:
            commands.append(("just demo", [just, "--justfile", str(Path(tmp) / "justfile"),
                                           "demo"], Path(tmp), env))
        if task:
            commands.append(("task demo", [task, "--taskfile", str(Path(tmp) / "Taskfile.yml"),
                                           "demo"], Path(tmp), env))
        timings: dict[str, list[float]] = {name: [] for name, *_ in commands}
        for _ in range(2):  # warm the page cache and the Core DB
            for _name, argv, cwd, cmd_env in commands:
                time_command(argv, cwd=cwd, env=cmd_env)
        for _ in range(options.runs):
            for name, argv, cwd, cmd_env in commands:
                timings[name].append(time_command(argv, cwd=cwd, env=cmd_env))
        header(f"cli_overhead (median of {options.runs} runs, interleaved)")
        base = median(timings["bash 100_main.sh (direct)"])
        print(f"{'command':28} {'median ms':>10} {'p95 ms':>8} {'overhead ms':>12}")
        for name, values in timings.items():
            print(f"{name:28} {median(values) * 1000:10.1f} {percentile(values, 0.95) * 1000:8.1f} "
                  f"{(median(values) - base) * 1000:12.1f}")
        flwd_name = next(name for name in timings if name.startswith("flwd"))
        record("cli_overhead", f"{flwd_name} (median)", median(timings[flwd_name]) * 1000, "ms",
               baseline=("bash script direct", base * 1000))
        for name in ("just demo", "task demo"):
            if name in timings:
                record("cli_overhead", f"{name} (median)", median(timings[name]) * 1000, "ms",
                       baseline=("bash script direct", base * 1000))
        for missing, found in (("just (rust-just)", just), ("task (go-task-bin)", task)):
            if not found:
                print(f"{missing}: not installed, skipped (pip install -e '.[bench]')")


if __name__ == "__main__":
    main()
