"""``flwd :kv`` end to end: the real CLI on a real data dir, and a job that keeps state
in the KV across runs, reaching it with no token (``FLWD_DATA_DIR`` from the engine)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flwd.store import SqliteStore
from tests.conftest import FLWD, flwd_env, run_cli, write_job

RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z")


def kv(workspace: Path, data_dir: Path, *args: str, stdin: bytes | None = None,
       **env: str) -> subprocess.CompletedProcess[bytes]:
    """``flwd :kv ARGS`` with ``stdin`` (bytes in, bytes out)."""
    return subprocess.run([*FLWD, ":kv", *args], cwd=workspace, env=flwd_env(data_dir, **env),
                          input=stdin if stdin is not None else b"", capture_output=True,
                          timeout=60, check=False)


def error_line(done: subprocess.CompletedProcess[bytes]) -> str:
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines  # one line, never a traceback
    assert lines[0].startswith("flwd: error: ")
    return lines[0]


def test_a_value_round_trips_byte_for_byte(workspace: Path, data_dir: Path) -> None:
    blob = bytes(range(256)) * 32  # 8 KiB exactly, every byte value
    put = kv(workspace, data_dir, "put", "core_triggers", "blobs/a b/é", stdin=blob)
    assert put.returncode == 0 and put.stdout == b"", put.stderr
    got = kv(workspace, data_dir, "get", "Core_Triggers", "blobs/a b/é")
    assert got.returncode == 0 and got.stdout == blob
    document = json.loads(kv(workspace, data_dir, "get", "core_triggers", "blobs/a b/é",
                             "--json").stdout)
    assert set(document) == {"key", "value", "timestamp"}
    assert document["key"] == "blobs/a b/é" and RFC3339.fullmatch(document["timestamp"])
    # A text operand, stored as its UTF-8.
    assert kv(workspace, data_dir, "put", "core_triggers", "-dash", "-v ü").returncode == 0
    assert kv(workspace, data_dir, "get", "core_triggers", "-dash").stdout == "-v ü".encode()
    assert kv(workspace, data_dir, "delete", "core_triggers", "-dash").returncode == 0
    gone = kv(workspace, data_dir, "get", "core_triggers", "-dash")
    assert gone.returncode == 1 and "no key '-dash'" in error_line(gone)


def test_list_pages_through_every_key_in_byte_order(workspace: Path, data_dir: Path) -> None:
    store = SqliteStore(data_dir / "flwd.db")  # the same Core DB the CLI opens
    keys = [f"job/{i:04d}" for i in range(600)] + ["other", "job\nline"]
    for key in keys:
        store.kv_put("core_invocation_state", key.encode(), b"v", quota=1 << 20)
    listed = kv(workspace, data_dir, "list", "core_invocation_state", "--prefix", "job/")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.decode().splitlines() == keys[:600]  # three pages of 256 at most
    every = kv(workspace, data_dir, "list", "core_invocation_state", "--json", "--limit", "300")
    items = json.loads(every.stdout)
    assert [item["key"] for item in items] == sorted(keys, key=str.encode)[:300]
    # A key with a line break is printed as a JSON string on its one line.
    tail = kv(workspace, data_dir, "list", "core_invocation_state", "--prefix", "job\n")
    assert tail.stdout.decode() == '"job\\nline"\n'


def test_refusals_are_one_line_with_their_exit_status(workspace: Path, data_dir: Path) -> None:
    forbidden = kv(workspace, data_dir, "put", "secrets", "k", "v")
    assert forbidden.returncode == 2
    assert "namespace 'secrets' is not allow-listed" in error_line(forbidden)
    too_long = kv(workspace, data_dir, "get", "core_triggers", "k" * 257)
    assert too_long.returncode == 2 and "257 bytes" in error_line(too_long)
    too_big = kv(workspace, data_dir, "put", "core_triggers", "k", stdin=b"x" * 8193)
    assert too_big.returncode == 2 and "8192 bytes" in error_line(too_big)
    bad_env = kv(workspace, data_dir, "get", "a", "b", FLWD_KV_NAMESPACES="a;b")
    assert bad_env.returncode == 2 and "FLWD_KV_NAMESPACES" in error_line(bad_env)
    # A namespace of FLWD_KV_NAMESPACES, with its quota.
    assert kv(workspace, data_dir, "put", "tiny", "k", "1234567",
              FLWD_KV_NAMESPACES="tiny=8").returncode == 0
    full = kv(workspace, data_dir, "put", "tiny", "j", "1", FLWD_KV_NAMESPACES="tiny=8")
    assert full.returncode == 1 and "quota" in error_line(full)
    missing = kv(workspace, data_dir, "delete", "core_triggers", "nothing")
    assert missing.returncode == 1 and "no key 'nothing'" in error_line(missing)
    assert not list(data_dir.glob("runs/*")), "no run was made"


@pytest.fixture
def flwd_on_path(tmp_path: Path) -> str:
    """A PATH whose ``flwd`` is this checkout's (as an installed flwd would be for a job)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "flwd"
    python_path = os.pathsep.join(filter(None, [str(Path(__file__).parents[2]),
                                                os.environ.get("PYTHONPATH")]))
    shim.write_text(f"#!/bin/sh\nPYTHONPATH='{python_path}' exec '{sys.executable}' -m flwd "
                    '"$@"\n')
    shim.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


COUNTER = """\
set -e
key="counter/$FLWD_JOB_ID"
n=$(flwd :kv get core_invocation_state "$key" 2>/dev/null || echo 0)
n=$((n + 1))
printf '%s' "$n" | flwd :kv put core_invocation_state "$key"
echo "run number $n (token: ${FLWD_TOKEN:-none})"
"""


def test_a_job_keeps_a_counter_across_two_runs(workspace: Path, data_dir: Path,
                                               flwd_on_path: str, tmp_path: Path) -> None:
    write_job(workspace, "counter", "interpreter: bash\n", {"100_count.sh": COUNTER})
    # The data dir is chosen with --data-dir, and the caller's environment names another
    # one: the job finds the run's data dir in what the engine gives it, nothing else.
    elsewhere = tmp_path / "elsewhere"
    for expected in (1, 2):
        done = run_cli(["--data-dir", str(data_dir), "counter"], cwd=workspace,
                       data_dir=elsewhere, PATH=flwd_on_path, FLWD_TOKEN="not-for-jobs")
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [f"run number {expected} (token: none)"]
    item = SqliteStore(data_dir / "flwd.db").kv_get("core_invocation_state", b"counter/counter")
    assert item is not None and item.value == b"2"
    assert not elsewhere.exists()
