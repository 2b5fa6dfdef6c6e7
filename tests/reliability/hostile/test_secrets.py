"""Secrets under attack: SIGKILL of their owner, a line cut in the middle, the idempotency table.

Every test searches the data dir and the runtime dir with ``grep -r`` for the
secret itself: a secret must not be in any file flwd leaves behind, nor in
any event a client reads.
"""

from __future__ import annotations

import array
import fcntl
import hashlib
import json
import os
import select
import signal
import sqlite3
import subprocess
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from flwd.execute._lines import MAX_LINE
from tests.conftest import FLWD, Server, flwd_env, run_cli, sse_events, write_job

DEV = {"Authorization": "Bearer dev-token"}

#: Reads its secret file, says "ready" and runs until killed; it ignores
#: SIGPIPE, so only recovery ends it once its owner is gone.
HOLDER = """#!/bin/bash
trap '' PIPE
echo "ready $(wc -c < "$ARG_KEY_FILE")"
while :; do sleep 0.05; done
"""
SECRET_ARG = "interpreter: bash\nargspec: {args: [{name: key, type: string, format: secret}]}\n"

#: Prints one line whose secret straddles the 1 MiB cut: MAX_LINE - 3 bytes, the
#: secret's first 3 bytes, then waits at its gate (a FIFO) until the test has seen
#: the reader take in all of that, so the rest of the secret comes in another read
#: (without masking-before-cutting the halves would land in two fragments); then
#: the rest of the secret and a tail. It leaves its pid (whose fd 1 is the pipe
#: the reader drains) next to the gate.
STRADDLER = f"""#!/bin/bash
key=$(cat "$ARG_KEY_FILE")
head -c {MAX_LINE - 3} /dev/zero | tr '\\0' x
printf '%s' "${{key:0:3}}"
echo $$ > "$ARG_GATE.tmp" && mv "$ARG_GATE.tmp" "$ARG_GATE.pid"
read -r _ < "$ARG_GATE"
printf '%s' "${{key:3}}"
printf 'yyyyyyyyyy\\n'
echo done
"""
STRADDLE_ARGS = ("interpreter: bash\nargspec: {args: [{name: key, type: string, format: secret},"
                 " {name: gate, type: string}]}\n")


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll ``condition`` (a cheap check) until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        select.select([], [], [], 0.002)


def unread_bytes(pid: int, fd: int) -> int:
    """How many bytes written to the pipe at ``fd`` of ``pid`` its reader has not taken yet."""
    pipe = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK)
    try:
        count = array.array("i", [0])
        fcntl.ioctl(pipe, termios.FIONREAD, count)
        return count[0]
    finally:
        os.close(pipe)


@pytest.fixture
def runtime_dir(tmp_path: Path) -> Path:
    """An ``XDG_RUNTIME_DIR`` as the spec wants it: ours, mode 0700."""
    path = tmp_path / "xdg-runtime"
    path.mkdir()
    path.chmod(0o700)
    return path


@pytest.fixture(params=["runtime-dir", "data-dir"])
def secret_env(request: pytest.FixtureRequest, runtime_dir: Path) -> Iterator[dict[str, str]]:
    """Secrets under ``$XDG_RUNTIME_DIR`` (usable), or in the data dir (no runtime dir)."""
    yield {"XDG_RUNTIME_DIR": str(runtime_dir) if request.param == "runtime-dir" else ""}


def holding(secret: str, *roots: Path) -> list[str]:
    """Files under ``roots`` that hold ``secret`` (``grep -rlF``)."""
    done = subprocess.run(["grep", "-rlF", "--", secret, *map(str, roots)],
                          capture_output=True, text=True, check=False)
    assert done.returncode in (0, 1), done.stderr
    return done.stdout.split()


def read_until_ready(process: subprocess.Popen[bytes]) -> str:
    """The run id, once the CLI's NDJSON shows the job's "ready" line."""
    assert process.stdout is not None
    while True:
        raw = process.stdout.readline()
        assert raw.endswith(b"\n"), f"the CLI stopped early: {process.wait(timeout=30)}"
        event = json.loads(raw)
        if event["type"] == "step.log" and event["data"]["message"].startswith("ready"):
            return str(event["run_id"])


def assert_secret_was_where_it_belongs(secret: str, before: list[str], data_dir: Path,
                                      runtime_dir: Path, env: dict[str, str], run_id: str
                                      ) -> None:
    """While the run lived, its secret was in exactly one file, where it belongs."""
    assert len(before) == 1, before
    if env["XDG_RUNTIME_DIR"]:
        assert before[0] == str(runtime_dir / "flwd" / run_id / "secrets" / "key")
    else:
        assert before[0] == str(data_dir / "runs" / run_id / "secrets" / "key")


def test_sigkill_of_a_cli_run_leaves_no_secret_file(workspace: Path, data_dir: Path,
                                                    runtime_dir: Path,
                                                    secret_env: dict[str, str]) -> None:
    write_job(workspace, "holder", SECRET_ARG, {"100_hold.sh": HOLDER})
    secret = "kill9-cli-Secret-5e1f"
    env = flwd_env(data_dir, FLWD_GRACE="1", **secret_env)
    with subprocess.Popen([*FLWD, "holder", "--key", secret, "--json"], cwd=workspace, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as process:
        try:
            run_id = read_until_ready(process)
            before = holding(secret, data_dir, runtime_dir)
            process.send_signal(signal.SIGKILL)
            assert process.wait(timeout=30) == -signal.SIGKILL
        finally:
            if process.poll() is None:
                process.kill()
    assert_secret_was_where_it_belongs(secret, before, data_dir, runtime_dir, secret_env, run_id)
    # Any next flwd command recovers the run: it is interrupted, its secret gone.
    listed = run_cli([":runs", "--json"], cwd=workspace, data_dir=data_dir, **secret_env)
    assert listed.returncode == 0, listed.stderr
    assert [(run["id"], run["status"]) for run in json.loads(listed.stdout)] == [
        (run_id, "interrupted")]
    assert holding(secret, data_dir, runtime_dir) == []


def test_sigkill_of_a_server_leaves_no_secret_file(workspace: Path, data_dir: Path,
                                                   runtime_dir: Path,
                                                   secret_env: dict[str, str]) -> None:
    from tests.conftest import start_server

    write_job(workspace, "holder", SECRET_ARG, {"100_hold.sh": HOLDER})
    secret = "kill9-serve-Secret-77ab"
    server: Server = start_server(workspace, data_dir, "--dev", FLWD_GRACE="1", **secret_env)
    try:
        created = httpx.post(f"{server.url}/runs", headers=DEV, timeout=30,
                             json={"job_id": "holder", "args": {"key": secret}})
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", headers=DEV,
                          timeout=60) as response:
            for event in sse_events(response.iter_lines()):
                if (event["type"] == "step.log"
                        and event["data"]["message"].startswith("ready")):
                    break
        before = holding(secret, data_dir, runtime_dir)
    finally:
        assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    assert_secret_was_where_it_belongs(secret, before, data_dir, runtime_dir, secret_env, run_id)
    listed = run_cli([":runs", "--json"], cwd=workspace, data_dir=data_dir, **secret_env)
    assert listed.returncode == 0, listed.stderr
    assert [(run["id"], run["status"]) for run in json.loads(listed.stdout)] == [
        (run_id, "interrupted")]
    assert holding(secret, data_dir, runtime_dir) == []


def test_recovery_sweeps_the_runtime_dir_of_terminal_runs_only(workspace: Path, data_dir: Path,
                                                              runtime_dir: Path) -> None:
    # What a crash between a run's end and the removal of its secrets would
    # leave (the run actor removes them before run.finish, so plant them).
    env = {"XDG_RUNTIME_DIR": str(runtime_dir)}
    done = run_cli(["demo", "--name", "x", "--json"], cwd=workspace, data_dir=data_dir, **env)
    assert done.returncode == 0, done.stderr
    finished = json.loads(done.stdout.splitlines()[0])["run_id"]
    foreign = "run-01J0000000000000000000OTHER"  # a live run of another data dir
    for run_id in (finished, foreign):
        folder = runtime_dir / "flwd" / run_id / "secrets"
        folder.mkdir(parents=True)
        (folder / "key").write_text("left-behind-Secret-0d0d")
    listed = run_cli([":runs"], cwd=workspace, data_dir=data_dir, **env)
    assert listed.returncode == 0, listed.stderr
    assert not (runtime_dir / "flwd" / finished).exists()
    assert (runtime_dir / "flwd" / foreign / "secrets" / "key").exists()


def test_a_secret_straddling_the_line_cut_is_masked_whole(workspace: Path, data_dir: Path,
                                                         runtime_dir: Path,
                                                         tmp_path: Path) -> None:
    write_job(workspace, "straddle", STRADDLE_ARGS, {"100_print.sh": STRADDLER})
    secret = "Zq7-straddling-Secret-9Kw"
    halves = (secret[:3], secret[3:])
    env = {"XDG_RUNTIME_DIR": str(runtime_dir)}
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    pid_file = gate.with_name("gate.pid")
    with subprocess.Popen([*FLWD, "straddle", "--key", secret, "--gate", str(gate), "--json"],
                          cwd=workspace, env=flwd_env(data_dir, **env), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        # Read and write ends at once (O_RDWR never blocks on Linux): the job's
        # `read` finds the line whenever it opens the FIFO.
        opener = os.open(gate, os.O_RDWR)
        try:
            wait_until(pid_file.exists, "the job to reach its gate")
            pid = int(pid_file.read_text())
            wait_until(lambda: unread_bytes(pid, 1) == 0, "the reader to take the first MiB")
            os.write(opener, b"go\n")
            stdout, stderr = process.communicate(timeout=120)
        finally:
            os.close(opener)
            if process.poll() is None:
                process.kill()
                process.communicate()
    live = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert live.returncode == 0, live.stderr
    events = [json.loads(line) for line in live.stdout.splitlines()]
    run_id = events[0]["run_id"]
    logs = run_cli([":logs", run_id], cwd=workspace, data_dir=data_dir, timeout=120, **env)
    assert logs.returncode == 0, logs.stderr
    for text in (live.stdout, logs.stdout):
        assert not any(half in text for half in halves), "a half of the secret leaked"
    messages = [e["data"]["message"] for e in events if e["type"] == "step.log"]
    assert messages == ["x" * (MAX_LINE - 3) + "[secret]", "yyyyyyyyyy", "done"]
    assert holding(secret, data_dir, runtime_dir) == []
    for half in halves:
        assert holding(half, data_dir) == []  # nor in the journal


def test_the_idempotency_table_keeps_no_plain_hash_of_the_body(dev_server: Server,
                                                               data_dir: Path) -> None:
    body = {"job_id": "demo", "args": {"name": "Ops", "secret_token": "idem-Secret-4242"}}
    headers = {**DEV, "Idempotency-Key": "secrets-0001"}
    first = httpx.post(f"{dev_server.url}/runs", headers=headers, json=body, timeout=30)
    assert first.status_code == 201, first.text
    # Behaviour is unchanged: a retry is the same run, another body a conflict.
    again = httpx.post(f"{dev_server.url}/runs", headers=headers, json=body, timeout=30)
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replay"] == "true"
    other = {**body, "args": {**body["args"], "secret_token": "idem-Secret-4243"}}
    conflict = httpx.post(f"{dev_server.url}/runs", headers=headers, json=other, timeout=30)
    assert conflict.status_code == 409, conflict.text
    assert "sha256" not in conflict.text  # no digest of another body to compare offline
    dev_server.stop()

    spellings = [json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
                 json.dumps(body)]
    plain = [hashlib.sha256(text.encode()).hexdigest() for text in spellings]
    files = [path for path in data_dir.iterdir() if path.name.startswith("flwd.db")]
    stored = b"".join(path.read_bytes() for path in files)
    for digest in plain:
        assert digest.encode() not in stored
        assert bytes.fromhex(digest) not in stored
    with sqlite3.connect(data_dir / "flwd.db") as conn:
        (value,) = conn.execute("SELECT body_sha256 FROM idempotency").fetchone()
    assert value.startswith("hmac-sha256:") and value[len("hmac-sha256:"):] not in plain
    key = data_dir / "idempotency.key"
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_bytes()) == 32
    # Nor is the secret itself anywhere: not in the data dir, not in the JSON request log.
    assert holding("idem-Secret-424", data_dir) == []
    assert not any("idem-Secret-424" in line for line in dev_server.log)


@pytest.mark.parametrize("flags", [["--secret-tokn", "{s}"], ["--secret_token", "-{s}"],
                                   ["-secret_token", "{s}"]])
def test_a_cli_error_about_a_mistyped_secret_flag_does_not_echo_the_secret(
        workspace: Path, data_dir: Path, flags: list[str]) -> None:
    secret = "typo-Secret-6b6b"
    done = run_cli(["demo", "--name", "x", *(flag.format(s=secret) for flag in flags)],
                   cwd=workspace, data_dir=data_dir)
    assert done.returncode == 2, done.stderr
    assert "flwd: error: invalid arguments for job demo" in done.stderr
    assert secret not in done.stdout + done.stderr
