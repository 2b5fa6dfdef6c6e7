"""Serve throughput with several workers: ``flwd :serve --workers N`` against one server and
webhook, in the same run (issue 17: runs/s with ``--workers 2`` >= 0.5x webhook's).

Three servers are started once and driven in interleaved rounds: adnanh/webhook running
the same script per request (the baseline), ``flwd :serve`` (one process) and ``flwd
:serve --workers N``. Each round sends ``--per-round`` trivial runs to each (one ``POST
/runs`` answered with the run's event stream, read to ``run.finish``; every event
journaled), from the lean client (bench/_lean.py: ``--threads`` kept-alive connections,
~0.4 ms of client CPU per run) — a client that itself burns a core would measure the
client. Reported: medians over the rounds of runs/s and of CPU per run (the whole
process tree of each server: supervisor, workers, process keepers and the jobs), and the
ratios. Afterwards each flwd Core DB must hold every run as completed.

On a 2-core machine the ratios say what a second process buys when the client, the jobs
and the servers all share two cores; read them beside the CPU per run.

    python bench/serve_workers.py [--workers 2] [--rounds 5] [--per-round 200] [--threads 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, start_server, write_job
from _cost import flwd_run, start_webhook, webhook_call
from _lean import drive, load_average, tree_cpu
from serve_throughput import OK_SCRIPT, completed_in_db, ensure_webhook

#: Runs/s with --workers 2 at least this fraction of webhook's (issue 17).
TARGET = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=200)
    parser.add_argument("--threads", type=int, default=8)
    options = parser.parse_args()
    webhook, note = ensure_webhook()
    names = ["webhook (runs the script)", "flwd :serve", f"flwd :serve --workers {options.workers}"]
    rates: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="flwd-bench-workers-") as tmp_name:
        tmp = Path(tmp_name)
        workspace = tmp / "ws"
        job = write_job(workspace, "ok", "interpreter: bash\n", {"100_ok.sh": OK_SCRIPT})
        one = start_server(workspace, tmp / "data-1")
        many = start_server(workspace, tmp / "data-n", "--workers", str(options.workers))
        hook = start_webhook(webhook, job / "100_ok.sh", tmp) if webhook else None
        targets = {names[1]: (one.url, one.pid, flwd_run),
                   names[2]: (many.url, many.pid, flwd_run)}
        if hook is not None:
            targets[names[0]] = (hook[1], hook[0].pid, webhook_call)
        start_load = load_average()
        try:
            for _ in range(options.rounds):
                for name, (url, pid, call) in targets.items():
                    before = tree_cpu(pid)
                    load = drive(url, call, options.per_round, options.threads)
                    after = tree_cpu(pid)
                    rates[name].append(options.per_round / load.wall)
                    spent = after - before
                    cpu[name].append((spent.own + spent.children) / options.per_round * 1000)
                    failures += [f"{name} {failure}" for failure in load.failures]
        finally:
            codes = [one.stop(), many.stop()]
            if hook is not None:
                hook[0].terminate()
                hook[0].wait(timeout=10)
        journaled = [completed_in_db(tmp / "data-1" / "flwd.db"),
                     completed_in_db(tmp / "data-n" / "flwd.db")]
    header(f"serve_workers ({options.rounds} interleaved rounds of {options.per_round} "
           f"runs each, {options.threads} client threads, lean client)")
    if note:
        print(note)
    print(f"load average (1/5/15 min): {start_load} at the start, {load_average()} at the end")
    print(f"{'server':34} {'runs/s':>8} {'min':>8} {'max':>8} {'CPU ms/run':>11}")
    medians = {}
    for name in names:
        if not rates[name]:
            print(f"{name:34} {'skipped':>8}")
            continue
        medians[name] = statistics.median(rates[name])
        print(f"{name:34} {medians[name]:8.1f} {min(rates[name]):8.1f} {max(rates[name]):8.1f} "
              f"{statistics.median(cpu[name]):11.2f}")
    print("CPU ms/run: the server's whole process tree (supervisor, workers, keepers, jobs)")
    print(f"flwd exit status after SIGTERM: {codes}; runs journaled as completed: "
          f"{journaled} of {options.rounds * options.per_round} each")
    for failure in failures[:10]:
        print(f"FAILED {failure}")
    workers_rate, single_rate = medians[names[2]], medians[names[1]]
    print(f"--workers {options.workers} / one process: {workers_rate / single_rate:.2f}x runs/s")
    if names[0] in medians:
        ratio = workers_rate / medians[names[0]]
        verdict = "met" if ratio >= TARGET else "NOT met"
        print(f"target --workers {options.workers} >= {TARGET}x webhook runs/s: {verdict} "
              f"({ratio:.2f}x)")
    if failures or journaled != [options.rounds * options.per_round] * 2 or codes != [0, 0]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
