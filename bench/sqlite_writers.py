"""Several processes writing one SQLite Core DB: commit latency with the host write lock.

Each of ``--writers`` processes commits small transactions (``BEGIN IMMEDIATE``, five
journal-sized rows, ``COMMIT``) in a loop, with a short pause between them, through
flwd's own connection (``flwd.store.connect``). Two modes, interleaved in rounds:

- ``busy handler``: the write lock switched off (``Connection.write_lock = None``): a
  writer that finds the database locked sleeps in SQLite's busy handler (1, 2, 5 …
  100 ms) and looks again — what flwd did before the lock;
- ``host lock``: the ``flock`` of ``<db>.lock`` around each transaction
  (flwd/store/_write_lock.py): the kernel wakes the next writer when it is let go; the
  WAL is checkpointed after the lock is let go, not inside the COMMIT that holds it.

Reported per mode: medians over the rounds of the commit latency's p50/p99/p99.9 and max
(ms, from ``BEGIN`` to the end of ``COMMIT``) and of commits/s of all writers together,
and the ratios host lock / busy handler. What several writers look like in flwd: a
server and a CLI run, a job's ``flwd :kv``, the workers of ``:serve``.

    python bench/sqlite_writers.py [--writers 3] [--commits 1500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import header

MODES = ("busy handler", "host lock")


def _writer(db: str, mode: str, commits: int, index: int, out: mp.Queue) -> None:
    from flwd.store import connect

    conn = connect(Path(db))
    if mode == "busy handler":  # as before the lock: SQLite checkpoints inside COMMIT
        conn.write_lock = None
        conn.execute("PRAGMA wal_autocheckpoint = 1000")
    conn.execute("CREATE TABLE IF NOT EXISTS bench(id INTEGER PRIMARY KEY, w INT, body TEXT)")
    body = "x" * 200
    latencies: list[float] = []
    for _ in range(commits):
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        for _row in range(5):
            conn.execute("INSERT INTO bench(w, body) VALUES (?, ?)", (index, body))
        conn.execute("COMMIT")
        latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(0.0005)  # the work between two commits (a pause, not synchronisation)
    conn.close()
    out.put(latencies)


def _round(db: Path, mode: str, writers: int, commits: int) -> dict[str, float]:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    from flwd.store import connect

    conn = connect(db)
    conn.execute("CREATE TABLE IF NOT EXISTS bench(id INTEGER PRIMARY KEY, w INT, body TEXT)")
    conn.close()
    out: mp.Queue = mp.Queue()
    processes = [mp.Process(target=_writer, args=(str(db), mode, commits, index, out))
                 for index in range(writers)]
    started = time.perf_counter()
    for process in processes:
        process.start()
    latencies = sorted(value for _ in processes for value in out.get())
    wall = time.perf_counter() - started
    for process in processes:
        process.join()

    def at(fraction: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * fraction))]

    return {"p50": at(0.5), "p99": at(0.99), "p999": at(0.999), "max": latencies[-1],
            "rate": len(latencies) / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=3)
    parser.add_argument("--commits", type=int, default=1500, help="per writer and round")
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    header(f"sqlite_writers ({options.rounds} interleaved rounds, {options.writers} writer "
           f"processes x {options.commits} commits)")
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="flwd-bench-writers-") as tmp:
        db = Path(tmp) / "flwd.db"
        for _ in range(options.rounds):
            for mode in MODES:
                results[mode].append(_round(db, mode, options.writers, options.commits))
    medians = {mode: {key: statistics.median(row[key] for row in rows)
                      for key in ("p50", "p99", "p999", "max", "rate")}
               for mode, rows in results.items()}
    print(f"{'mode':<14} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'max ms':>8} "
          f"{'commits/s':>10}")
    for mode, row in medians.items():
        print(f"{mode:<14} {row['p50']:8.2f} {row['p99']:8.2f} {row['p999']:9.2f} "
              f"{row['max']:8.1f} {row['rate']:10.0f}")
    lock, busy = medians["host lock"], medians["busy handler"]
    print(f"host lock / busy handler: p99 {lock['p99'] / busy['p99']:.2f}x, p99.9 "
          f"{lock['p999'] / busy['p999']:.2f}x, max {lock['max'] / busy['max']:.2f}x, "
          f"commits/s {lock['rate'] / busy['rate']:.2f}x")


if __name__ == "__main__":
    main()
