"""Run every benchmark under bench/ and write one Markdown report (bench/REPORT.md).

Each benchmark runs as its own process (as it would alone); its headline figures come
from :func:`bench._common.record` and its full output is kept in the report, so every
figure stands beside the baseline measured in the same run.

    python bench/run_all.py [--only NAME ...] [--skip NAME ...] [--report PATH]
                            [--quick]   # smaller sizes, for a smoke run of the harness
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS_ENV, machine

#: (name, arguments for a full run, arguments for --quick)
BENCHMARKS: list[tuple[str, list[str], list[str]]] = [
    ("output_throughput", [], ["--lines", "100000", "--repeat", "1"]),
    ("cli_overhead", [], ["--runs", "5"]),
    ("serve_throughput", [], ["--runs", "200"]),
    # The server's own CPU per run beside a bare hypercorn-trio hello (issue 17: <= 4 ms).
    ("serve_throughput", ["--cost"], ["--cost", "--rounds", "3", "--per-round", "30"]),
    ("sse_fanout", [], ["--subscribers", "50", "--lines", "500", "--rate", "200"]),
    ("idle_memory", [], ["--runs", "50"]),
    ("step_containment", [], ["--steps", "50", "--extra", "300"]),
    ("replay_memory", [], ["--lines", "100000", "--readers", "1,3,10"]),
    ("container_overhead", [], ["--runs", "3"]),
    ("completion_latency", [], ["--calls", "100"]),
    ("ui_page", [], ["--loads", "5", "--lines", "30000", "--log-loads", "2", "--steps", "30"]),
]


def run_one(name: str, args: list[str], results: Path) -> tuple[int, str, float]:
    script = REPO / "bench" / f"{name}.py"
    env = {**os.environ, RESULTS_ENV: str(results)}
    start = time.monotonic()
    done = subprocess.run([sys.executable, str(script), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
    output = done.stdout + (f"\n[stderr]\n{done.stderr}" if done.returncode and done.stderr
                            else "")
    return done.returncode, output, time.monotonic() - start


def fmt(value: float, unit: str) -> str:
    if unit in ("lines/s", "runs/s"):
        return f"{value:,.0f} {unit}"
    return f"{value:,.2f} {unit}" if abs(value) < 100 else f"{value:,.1f} {unit}"


def render(outputs: list[tuple[str, int, str, float]], figures: list[dict], quick: bool) -> str:
    lines = ["# flwd benchmark report", "",
             f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
             f"- machine: {machine()}",
             f"- profile: {'quick (reduced sizes: not comparable to the targets)' if quick else 'full'}",
             f"- command: `python bench/run_all.py{' --quick' if quick else ''}`", "",
             "## Headline figures", "",
             "| benchmark | figure | value | baseline (same run) | target | met |",
             "|---|---|---|---|---|---|"]
    for entry in figures:
        baseline = (f"{entry['baseline']}: {fmt(entry['baseline_value'], entry['unit'])}"
                    if "baseline" in entry else "")
        met = "" if entry.get("met") is None else ("yes" if entry["met"] else "**no**")
        lines.append(f"| {entry['bench']} | {entry['figure']} | "
                     f"{fmt(entry['value'], entry['unit'])} | {baseline} | "
                     f"{entry.get('target', '')} | {met} |")
    lines += ["", "## Runs", ""]
    for name, code, output, seconds in outputs:
        status = "ok" if code == 0 else f"**failed (exit {code})**"
        lines += [f"### {name} — {status}, {seconds:.0f} s", "", "```text",
                  output.rstrip(), "```", ""]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--skip", nargs="*", default=[])
    parser.add_argument("--report", type=Path, default=REPO / "bench" / "REPORT.md")
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    known = [name for name, _, _ in BENCHMARKS]
    for name in [*(options.only or []), *options.skip]:
        if name not in known:
            parser.error(f"unknown benchmark {name!r} (known: {', '.join(known)})")
    outputs: list[tuple[str, int, str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.ndjson"
        results.touch()
        for name, full, quick in BENCHMARKS:
            if (options.only and name not in options.only) or name in options.skip:
                continue
            # A benchmark run in two modes is told apart by its full run's flags.
            label = " ".join([name, *full])
            print(f"== {label}", flush=True)
            code, output, seconds = run_one(name, quick if options.quick else full, results)
            print(output, flush=True)
            outputs.append((label, code, output, seconds))
        figures = [json.loads(line) for line in results.read_text().splitlines() if line]
    options.report.write_text(render(outputs, figures, options.quick))
    print(f"report: {options.report}")
    return 0 if all(code == 0 for _, code, _, _ in outputs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
