"""Helpers shared by the benchmarks: timing whole commands, medians, percentiles, reports."""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

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


def header(title: str) -> None:
    print(f"## {title}")
    print(f"machine: {machine()}")
