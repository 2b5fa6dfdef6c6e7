"""Output throughput: a job printing 1,000,000 lines, journaled and streamed by `flwd --json`.

Baseline in the same run: the same script piped to /dev/null. Every line must
be in the Core DB afterwards (checked). Target: >= 500,000 lines/s end to end.

    python bench/output_throughput.py [--lines N] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, median, record, time_command

TARGET = 500_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flwd-bench-") as tmp:
        workspace = Path(tmp) / "ws"
        job = workspace / "scripts" / "big"
        (job / "config.d").mkdir(parents=True)
        (job / "config.d" / "config.yaml").write_text("interpreter: bash\n")
        script = job / "100_big.sh"
        script.write_text(f'seq -f "line %g" 1 {options.lines}\n')
        env = {**os.environ, "NO_COLOR": "1"}
        baseline, flwd, flwd_human = [], [], []
        for attempt in range(options.repeat):
            data = Path(tmp) / f"data{attempt}"
            baseline.append(time_command(["bash", str(script)], cwd=workspace, env=env))
            flwd.append(time_command(
                [sys.executable, "-m", "flwd", "--data-dir", str(data), "big", "--json"],
                cwd=workspace, env=env))
            journaled = _journaled_lines(data / "flwd.db")
            if journaled != options.lines:
                raise SystemExit(f"only {journaled} of {options.lines} lines were journaled")
            flwd_human.append(time_command(
                [sys.executable, "-m", "flwd", "--data-dir", str(data), "big"],
                cwd=workspace, env=env))
        header(f"output_throughput ({options.lines:,} lines, median of {options.repeat})")
        rows = [("script > /dev/null (baseline)", median(baseline)),
                ("flwd big --json > /dev/null", median(flwd)),
                ("flwd big > /dev/null (human)", median(flwd_human))]
        print(f"{'command':34} {'wall s':>8} {'lines/s':>12} {'vs baseline':>12}")
        for name, seconds in rows:
            print(f"{name:34} {seconds:8.3f} {options.lines / seconds:12,.0f} "
                  f"{seconds / rows[0][1]:11.2f}x")
        rate = options.lines / median(flwd)
        verdict = "met" if rate >= TARGET else "NOT met"
        print(f"every line journaled: yes; target >= {TARGET:,} lines/s end to end: "
              f"{verdict} ({rate:,.0f})")
        record("output_throughput", "flwd --json, every line journaled", rate, "lines/s",
               baseline=("script > /dev/null", options.lines / median(baseline)),
               target=f">= {TARGET:,} lines/s", met=rate >= TARGET)


def _journaled_lines(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        (count,) = conn.execute("SELECT COALESCE(SUM(last_seq - seq + 1), 0) FROM events"
                                " WHERE type = 'step.log'").fetchone()
    finally:
        conn.close()
    return int(count)


if __name__ == "__main__":
    main()
