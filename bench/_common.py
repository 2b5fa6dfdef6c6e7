"""Helpers shared by the benchmarks: timing whole commands, medians, percentiles, reports,
and a real ``flwd :serve`` subprocess with RSS/CPU readings for the serve-mode benchmarks."""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def tool(name: str) -> str | None:
    """A command from the venv (rust-just, go-task-bin install there) or PATH."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name)


def time_command(argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None,
                 stdout: int | None = subprocess.DEVNULL, check: bool = True) -> float:
    """Wall time of one run of ``argv`` in seconds."""
    start = time.perf_counter()
    result = subprocess.run(list(argv), cwd=cwd, env=env, stdout=stdout,
                            stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    if check and result.returncode != 0:
        raise SystemExit(f"benchmark command failed ({result.returncode}): {' '.join(argv)}\n"
                         f"{result.stderr.decode(errors='replace')}")
    return elapsed


def percentile(values: Sequence[float], q: float) -> float:
    """The element at index ceil(q*n) - 1 of the sorted values (the reference's definition)."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, -(-int(q * len(ordered) * 1000) // 1000) - 1))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    cpus = os.cpu_count()
    return (f"{platform.system()} {platform.release()}, {cpus} CPUs, "
            f"Python {platform.python_version()}")


#: When set (by bench/run_all.py), :func:`record` appends one JSON object per figure here.
RESULTS_ENV = "FLWD_BENCH_RESULTS"


def record(bench: str, figure: str, value: float, unit: str, *,
           baseline: tuple[str, float] | None = None, target: str | None = None,
           met: bool | None = None) -> None:
    """Report a headline figure for bench/REPORT.md (a no-op when run alone).

    ``baseline`` is (what, value) measured in the same run; ``target`` the goal as
    text and ``met`` whether this figure reaches it.
    """
    path = os.environ.get(RESULTS_ENV)
    if not path:
        return
    entry: dict[str, Any] = {"bench": bench, "figure": figure, "value": value, "unit": unit}
    if baseline is not None:
        entry["baseline"], entry["baseline_value"] = baseline
    if target is not None:
        entry["target"], entry["met"] = target, met
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")


def header(title: str) -> None:
    print(f"## {title}")
    print(f"machine: {machine()}")


# -- serve-mode benchmarks -----------------------------------------------------------------

#: The bearer token every ``--dev`` server accepts (all scopes).
DEV_AUTH = {"Authorization": "Bearer dev-token"}
TERMINAL = frozenset({"completed", "failed", "canceled", "interrupted"})


def write_job(workspace: Path, name: str, config: str, scripts: dict[str, str]) -> Path:
    """Create ``scripts/<name>`` (config.d/config.yaml + executable scripts) in ``workspace``."""
    job = workspace / "scripts" / name
    (job / "config.d").mkdir(parents=True, exist_ok=True)
    (job / "config.d" / "config.yaml").write_text(config)
    for file_name, body in scripts.items():
        path = job / file_name
        path.write_text(body)
        path.chmod(0o755)
    return job


def flwd_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The current environment without FLWD_* variables, pointed at ``data_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLWD_")}
    env.update({"FLWD_DATA_DIR": str(data_dir), "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


class Server:
    """A ``flwd :serve`` subprocess on 127.0.0.1:0; its URL is read from its JSON log."""

    def __init__(self, process: subprocess.Popen[str], url: str, log: list[str]) -> None:
        self.process = process
        self.url = url
        self.log = log
        self.drainer: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in list(self.log):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def problems(self) -> list[str]:
        """Log lines at level warning or worse, and non-JSON lines but Hypercorn's [INFO]."""
        found = []
        for line in list(self.log):
            try:
                record = json.loads(line)
            except ValueError:
                if line.strip() and "[INFO]" not in line:
                    found.append(line.rstrip())
                continue
            level = str(record.get("level", "")).lower() if isinstance(record, dict) else ""
            if level in ("warning", "error", "critical"):
                found.append(line.rstrip())
        return found

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        if self.drainer is not None:
            self.drainer.join(timeout=timeout)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return code


def start_server(workspace: Path, data_dir: Path, *flags: str, **env: str) -> Server:
    """Start ``flwd :serve --dev`` and wait for its "serving" log line (read, never slept on)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "flwd", ":serve", "--bind", "127.0.0.1:0", "--log", "json",
         "--no-containers", "--dev", *flags],
        cwd=workspace, env=flwd_env(data_dir, **env), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    log: list[str] = []
    url = ""
    for line in process.stderr:
        log.append(line)
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("msg") == "serving":
            url = record["urls"][0]
            break
    if not url:
        process.wait(timeout=10)
        raise SystemExit("flwd :serve did not start:\n" + "".join(log))

    def drain() -> None:  # keep reading so the server never blocks on a full pipe
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line)

    server = Server(process, url, log)
    server.drainer = threading.Thread(target=drain, daemon=True)
    server.drainer.start()
    return server


def proc_status_kb(pid: int, field: str = "VmRSS") -> int:
    """A ``kB`` field of /proc/<pid>/status (VmRSS, VmHWM, ...); 0 if the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def pss_kb(pid: int) -> int:
    """Proportional set size (shared pages split between their users); 0 if unreadable."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def processes_with_env(marker: str) -> list[int]:
    """Live (non-zombie) processes whose environment contains ``marker``."""
    needle = marker.encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        state = stat[stat.rfind(b")") + 2:].split()[0]
        if needle in env and state != b"Z":
            found.append(int(name))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc/<pid>/stat)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """Samples a process's VmRSS in a thread; ``peak_kb`` is the largest value seen."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kb = proc_status_kb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_kb = max(self.peak_kb, proc_status_kb(self.pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, proc_status_kb(self.pid))


def mb(kb: float) -> str:
    return f"{kb / 1024:.1f}"
