"""The thin client (issue 17 item 1): with a local ``flwd :serve`` on the data dir, ``flwd JOB``
is one request on its Unix socket, and prints and exits exactly as a local run.

Every test runs the real console entry point as a subprocess against a real server (its
own process, on port 0 and on ``<data dir>/serve.sock``); "local" is the same command
line with ``FLWD_LOCAL=1``. Output is compared byte for byte after run ids, timestamps,
sequence numbers and durations are replaced (two runs never share those).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.complete.conftest import HEAVY, imported
from tests.conftest import (
    FLWD,
    Server,
    flwd_env,
    processes_under,
    run_cli,
    wait_until,
    write_job,
)

GRACE = "2"
_VOLATILE = [
    (re.compile(rb"run-[0-9A-Z]{26}"), b"RUN"),
    (re.compile(rb'"ts":"[^"]*"'), b'"ts":"T"'),
    (re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"), b"TIME"),
    (re.compile(rb'"seq":\d+'), b'"seq":0'),
    (re.compile(rb'"duration_ms":\d+'), b'"duration_ms":0'),
]


def _normal(data: bytes) -> bytes:
    for pattern, replacement in _VOLATILE:
        data = pattern.sub(replacement, data)
    return data


def _flwd(args: list[str], workspace: Path, data_dir: Path, *, local: bool = False,
          **env: str) -> subprocess.CompletedProcess[bytes]:
    extra = {"FLWD_GRACE": GRACE, **env, **({"FLWD_LOCAL": "1"} if local else {})}
    return subprocess.run([*FLWD, *args], cwd=workspace, env=flwd_env(data_dir, **extra),
                          capture_output=True, timeout=120, check=False)


def _handed_over(server: Server, *, status: int | None = None) -> int:
    """How many ``POST /runs`` came in through the local socket so far (of ``status``)."""
    count = 0
    for line in list(server.log):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("msg") == "request" and record.get("route") == "/runs" \
                and record.get("method") == "POST" and record.get("subject") == "local" \
                and status in (None, record.get("status")):
            count += 1
    return count


@pytest.fixture
def server(server_factory: Any) -> Server:
    return server_factory(FLWD_GRACE=GRACE)


def _write_special_jobs(workspace: Path) -> None:
    # stdout, then stderr after an exit status is known: no race between the two pipes.
    write_job(workspace, "bytes", "job: {summary: prints bytes that are not UTF-8}\n",
              {"100_main.sh": "printf 'caf\\xe9 \\xff\\xfe\\n'\nprintf 'ok\\n'\n",
               "200_err.sh": "printf 'to stderr \\xc3\\n' >&2\n"})
    write_job(workspace, "token", "job: {summary: takes a secret}\nargspec:\n  args:\n"
              "    - {name: key, type: string, format: secret, required: true}\n",
              {"100_main.sh": 'echo "key file: ${ARG_KEY_FILE:+set}"\n'})
    write_job(workspace, "broken", "job: [this is not a mapping\n", {})
    write_job(workspace, "chain", "job: {summary: two steps in a row}\ncomposition: steps\n"
              "steps:\n  - {id: one, script: one.sh}\n  - {id: two, script: two.sh}\n",
              {"one.sh": "echo first\necho again\n", "two.sh": "echo oops >&2\nexit 4\n"})
    # flwd sets variables in its own environment (flwd.OWN_ENVIRONMENT): a job does not
    # inherit them, through a server neither.
    write_job(workspace, "inherits", "job: {summary: inherits the environment}\n"
              "env_inheritance: true\n", {"100_main.sh": 'echo "plugins='
                                          '${PYDANTIC_DISABLE_PLUGINS-unset} term=${TERM-unset}"\n'})
    write_job(workspace, "envy", "job: {summary: shows what PATH it got}\n",
              {"100_main.sh": 'echo "PATH=$PATH"\necho "CLIENT=${CLIENT_ONLY:-unset}"\n'})


COMMAND_LINES = [
    pytest.param(["demo", "--name", "alice"], id="success"),
    pytest.param(["hello-demo", "--name", "bo", "--loud"], id="alias"),
    pytest.param(["examples", "fail"], id="failure-exit-1"),
    pytest.param(["demo", "--nope", "1"], id="arg-error"),
    pytest.param(["demo"], id="missing-required"),
    pytest.param(["nosuch"], id="unknown-job"),
    pytest.param(["examples"], id="unknown-job-close-matches"),
    pytest.param(["broken"], id="broken-config"),
    pytest.param(["demo", "--name", "x", "--json"], id="json"),
    pytest.param(["examples", "fail", "--json"], id="json-failure"),
    pytest.param(["demo", "--help"], id="help"),
    pytest.param(["chain"], id="steps-prefixed"),
    pytest.param(["inherits", "--profile", "disabled"], id="env-inheritance"),
    pytest.param(["chain", "--json"], id="steps-json"),
    pytest.param(["bytes"], id="output-not-utf8"),
    pytest.param(["token", "--key", "s3"], id="secret-on-argv-warnings"),
    pytest.param(["demo", "--name", "x", "--profile", "nope"], id="bad-profile"),
    pytest.param(["demo", "--name", "\udcff"], id="argv-not-utf8"),
]


@pytest.mark.parametrize("words", COMMAND_LINES)
def test_the_same_output_and_exit_status_as_a_local_run(
        workspace: Path, data_dir: Path, server: Server, words: list[str]) -> None:
    _assert_same(workspace, data_dir, server, words)


@pytest.mark.parametrize("env", [{"FLWD_PROFILE": "nope"}, {"FLWD_PROFILE": "disabled"},
                                 {"FLWD_POLICY_FILE": "/nonexistent/policy.yaml"}],
                         ids=["bad-profile", "profile", "policy-file"])
def test_the_planning_takes_the_clients_environment(
        workspace: Path, data_dir: Path, server: Server, env: dict[str, str]) -> None:
    _assert_same(workspace, data_dir, server, ["demo", "--name", "p", "--json"], **env)


def _assert_same(workspace: Path, data_dir: Path, server: Server, words: list[str],
                 **env: str) -> None:
    _write_special_jobs(workspace)
    before = _handed_over(server)
    thin = _flwd(words, workspace, data_dir, **env)
    wait_until(lambda: _handed_over(server) > before, "the server to log the request")
    local = _flwd(words, workspace, data_dir, local=True, **env)
    assert (thin.returncode, _normal(thin.stdout), _normal(thin.stderr)) == (
        local.returncode, _normal(local.stdout), _normal(local.stderr))
    assert b"Traceback" not in thin.stderr


def test_host_steps_get_the_clients_environment(workspace: Path, data_dir: Path,
                                                 server: Server) -> None:
    _write_special_jobs(workspace)
    path = f"{workspace}/bin:{os.environ['PATH']}"
    thin = _flwd(["envy"], workspace, data_dir, PATH=path, CLIENT_ONLY="yes")
    assert thin.returncode == 0, thin.stderr
    assert thin.stdout.decode().splitlines()[0] == f"PATH={path}"
    assert _handed_over(server) == 1


def _started_by_server(server: Server) -> int:
    """How many runs the server started for a command line so far (201 on the socket)."""
    return _handed_over(server, status=201)


def test_a_job_that_notifies_runs_here(workspace: Path, data_dir: Path,
                                       server: Server) -> None:
    write_job(workspace, "alerting", "job: {summary: notifies}\nnotify:\n  - on: [failure]\n"
              "    command: [cat]\n", {"100_main.sh": "echo hi\n"})
    done = _flwd(["alerting"], workspace, data_dir)
    assert (done.returncode, done.stdout) == (0, b"hi\n")
    wait_until(lambda: _handed_over(server) == 1, "the server's answer")
    assert _started_by_server(server) == 0  # declined: the run was this process's
    assert _flwd(["demo", "--name", "n"], workspace, data_dir).returncode == 0
    wait_until(lambda: _started_by_server(server) == 1, "a run the server starts")


def test_what_only_this_process_can_read_runs_here(workspace: Path, data_dir: Path,
                                                   server: Server, tmp_path: Path) -> None:
    _write_special_jobs(workspace)
    secret = tmp_path / "key"
    secret.write_text("a-long-secret\n")
    for words, env in ((["token", "--key-file", str(secret)], {}),
                       (["demo", "--name", "x"], {"FLWD_KV_NAMESPACES": "other"}),
                       (["demo", "--name", "x"], {"FLWD_LOCAL": "1"})):
        done = _flwd(words, workspace, data_dir, **env)
        assert done.returncode == 0, done.stderr
    # The server looked at the first two and declined them (200, cli.local); the third
    # never reached it. Each ran here all the same.
    listed = json.loads(run_cli([":runs", "--json"], cwd=workspace, data_dir=data_dir,
                                FLWD_LOCAL="1").stdout)
    assert len(listed) == 3
    assert _handed_over(server) == 2


def test_a_stopped_server_leaves_a_stale_socket_and_the_run_is_local(
        workspace: Path, data_dir: Path, server_factory: Any) -> None:
    server_factory(FLWD_GRACE=GRACE).stop(signal.SIGKILL)
    assert (data_dir / "serve.sock").exists() and (data_dir / "serve.json").exists()
    done = _flwd(["demo", "--name", "z"], workspace, data_dir)
    assert (done.returncode, done.stdout) == (0, b"demo: Hello, z!\ndemo: completed\n")
    # The next server replaces the stale socket, and is used.
    server = server_factory(FLWD_GRACE=GRACE)
    done = _flwd(["demo", "--name", "z"], workspace, data_dir)
    assert (done.returncode, done.stdout) == (0, b"demo: Hello, z!\ndemo: completed\n")
    wait_until(lambda: _handed_over(server) == 1, "the run through the new server")


def test_a_server_of_another_workspace_is_not_used(tmp_path: Path, workspace: Path,
                                                   data_dir: Path, server: Server) -> None:
    from tests.conftest import copy_bundled_scripts

    other = copy_bundled_scripts(tmp_path / "other")
    done = _flwd(["demo", "--name", "o"], other, data_dir)
    assert done.returncode == 0, done.stderr
    assert _handed_over(server) == 0
    listed = json.loads(run_cli([":runs", "--all", "--json"], cwd=other, data_dir=data_dir,
                                FLWD_LOCAL="1").stdout)
    assert [run["workspace"] for run in listed] == [str(other.resolve())]


def test_the_thin_path_imports_nothing_heavy(workspace: Path, data_dir: Path,
                                             server: Server) -> None:
    done = subprocess.run([str(Path(sys.executable).parent / "flwd"), "demo", "--name", "i"],
                          cwd=workspace, env=flwd_env(data_dir, PYTHONPROFILEIMPORTTIME="1",
                                                      FLWD_GRACE=GRACE),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "demo: Hello, i!\ndemo: completed\n"
    modules = imported(done.stderr)
    assert "flwd.thin._run" in modules
    heavy = sorted(name for name in modules if name.split(".")[0] in HEAVY)
    assert heavy == []
    assert not any(name.startswith(("flwd.cli", "flwd.engine", "flwd.jobs")) for name in modules)


#: What the thin client does without: each costs milliseconds of a start-up that is
#: ~20 ms in all (``re`` and ``enum`` alone ~9 ms; ``typing`` ~4; ``dataclasses`` ~20).
LEAN_FORBIDDEN = ("typing", "dataclasses", "inspect", "pathlib", "json", "socket", "signal",
                  "enum", "re", "collections", "datetime", "selectors", "base64", "contextlib")


def test_the_thin_path_imports_only_what_the_interpreter_has(workspace: Path, data_dir: Path,
                                                             server: Server) -> None:
    """Without site (whose packages' .pth files import what they import), the thin
    client's run — the ``flwd`` command pip installs, bin/flwd — loads flwd's lean
    modules and C modules, nothing else of the stdlib."""
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-S", "-X", "importtime", str(repo / "bin" / "flwd"),
         "demo", "--name", "i"],
        cwd=workspace, env=flwd_env(data_dir, FLWD_GRACE=GRACE, PYTHONPATH=str(repo)),
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "demo: Hello, i!\ndemo: completed\n"
    modules = imported(done.stderr)
    assert "flwd.thin._run" in modules
    assert sorted(name for name in modules if name.split(".")[0] in LEAN_FORBIDDEN) == []


def _start_long(workspace: Path, data_dir: Path, *flags: str,
                grace: str = GRACE) -> subprocess.Popen[str]:
    return subprocess.Popen([*FLWD, "examples", "long", "--json", *flags], cwd=workspace,
                            env=flwd_env(data_dir, FLWD_GRACE=grace), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_tree(process: subprocess.Popen[str]) -> tuple[str, int]:
    assert process.stdout is not None
    run_id, grandchild, leader = "", 0, 0
    for line in process.stdout:
        event = json.loads(line)
        run_id = event["run_id"]
        message = event["data"].get("message", "")
        if message.startswith("long: leader"):
            leader = int(message.split()[2])
        if message.startswith("long: grandchild"):
            grandchild = int(message.split()[2])
        if leader and grandchild:
            return run_id, grandchild
    raise AssertionError("the job never reported its process tree")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return state[state.rfind(b")") + 2:].split()[0] != b"Z"


def _local_request(data_dir: Path, method: str, target: str,
                   body: Any = None) -> tuple[int, bytes]:
    """A request on the server's socket (no token: the data dir's owner)."""
    from flwd.thin._http import request

    return request(data_dir / "serve.sock", method, target, body)


def _run(data_dir: Path, run_id: str) -> dict[str, Any]:
    status, body = _local_request(data_dir, "GET", f"/runs/{run_id}")
    assert status == 200, body
    return json.loads(body)


def _events(data_dir: Path, run_id: str) -> list[dict[str, Any]]:
    status, body = _local_request(data_dir, "GET", f"/runs/{run_id}/events.ndjson")
    assert status == 200, body
    return [json.loads(line) for line in body.splitlines()]


@pytest.mark.parametrize("ignore_term", [False, True], ids=["plain", "grandchild-ignores-TERM"])
def test_ctrl_c_cancels_the_run_on_the_server(workspace: Path, data_dir: Path,
                                              server: Server, ignore_term: bool) -> None:
    with _start_long(workspace, data_dir, *(["--ignore_term"] if ignore_term else [])) as process:
        run_id, grandchild = _wait_for_tree(process)
        assert _run(data_dir, run_id)["status"] == "running"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert not _alive(grandchild)
    assert not processes_under(f"FLWD_RUN_ID={run_id}")
    assert _run(data_dir, run_id)["status"] == "canceled"
    canceled = [event["data"] for event in _events(data_dir, run_id)
                if event["type"] == "run.canceled"]
    assert canceled == [{"reason": "interrupted by SIGINT (Ctrl-C)", "by": "cli",
                         **{key: value for key, value in canceled[0].items()
                            if key not in ("reason", "by")}}]
    # What the terminal shows, as for a local run.
    assert json.loads(stdout.splitlines()[-1])["data"]["status"] == "canceled"


def test_second_ctrl_c_kills_at_once(workspace: Path, data_dir: Path,
                                     server_factory: Any) -> None:
    server_factory(FLWD_GRACE="60")
    with _start_long(workspace, data_dir, "--ignore_term", grace="60") as process:
        run_id, grandchild = _wait_for_tree(process)
        process.send_signal(signal.SIGINT)
        assert process.stdout is not None
        for line in process.stdout:
            if json.loads(line)["type"] == "run.canceled":
                break
        interrupted_at = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        elapsed = time.monotonic() - interrupted_at
    assert process.returncode == 130, stderr
    assert elapsed < 5, f"the second Ctrl-C should not wait for the 60 s grace ({elapsed:.1f}s)"
    assert not _alive(grandchild)
    assert _run(data_dir, run_id)["status"] == "canceled"


def test_a_cancel_waits_the_clients_grace(workspace: Path, data_dir: Path,
                                          server_factory: Any) -> None:
    server_factory(FLWD_GRACE="60")  # e.g. the systemd unit's FLWD_GRACE
    with _start_long(workspace, data_dir, "--ignore_term", grace="1") as process:
        _, grandchild = _wait_for_tree(process)
        interrupted_at = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        elapsed = time.monotonic() - interrupted_at
    assert process.returncode == 130, stderr
    assert elapsed < 10, f"the client's 1 s grace, not the server's 60 s ({elapsed:.1f}s)"
    assert not _alive(grandchild)


def test_sigterm_exits_143_as_a_local_run(workspace: Path, data_dir: Path,
                                          server: Server) -> None:
    with _start_long(workspace, data_dir) as process:
        run_id, _ = _wait_for_tree(process)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 143, stderr
    canceled = next(event["data"] for event in _events(data_dir, run_id)
                    if event["type"] == "run.canceled")
    assert canceled["reason"] == "interrupted by SIGTERM" and canceled["by"] == "cli"


def test_flwd_cancel_from_another_shell_exits_143_as_for_a_local_run(
        workspace: Path, data_dir: Path, server: Server) -> None:
    with _start_long(workspace, data_dir) as process:
        run_id, grandchild = _wait_for_tree(process)
        done = run_cli([":cancel", "last"], cwd=workspace, data_dir=data_dir)
        assert (done.returncode, done.stdout) == (0, f"cancel requested for run {run_id}\n")
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 143, stderr
    assert not _alive(grandchild)
    canceled = next(event["data"] for event in _events(data_dir, run_id)
                    if event["type"] == "run.canceled")
    assert (canceled["reason"], canceled["by"]) == ("interrupted by SIGTERM", "cli")


def test_flwd_cancel_reaches_a_run_the_server_started(workspace: Path, data_dir: Path,
                                                      server: Server) -> None:
    status, body = _local_request(data_dir, "POST", "/runs", {"job_id": "examples.long"})
    assert status == 201, body
    run_id = json.loads(body)["id"]
    done = run_cli([":cancel", run_id], cwd=workspace, data_dir=data_dir)
    assert (done.returncode, done.stdout) == (0, f"cancel requested for run {run_id}\n")
    wait_until(lambda: _run(data_dir, run_id)["status"] == "canceled", "the cancel")


def test_a_client_killed_takes_its_run_with_it(workspace: Path, data_dir: Path,
                                               server: Server) -> None:
    with _start_long(workspace, data_dir) as process:
        run_id, grandchild = _wait_for_tree(process)
        process.kill()
        process.communicate(timeout=10)
    wait_until(lambda: _run(data_dir, run_id)["status"] == "canceled", "the run's cancel")
    wait_until(lambda: not _alive(grandchild), "the run's processes to go")


def test_a_server_stopping_under_a_run_ends_the_command_in_one_line(
        workspace: Path, data_dir: Path, server: Server) -> None:
    with _start_long(workspace, data_dir) as process:
        run_id, grandchild = _wait_for_tree(process)
        server.stop()  # SIGTERM: the streams end, the server cancels its runs
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1, stderr
    assert stderr.splitlines()[-1] == (f"flwd: run {run_id} ended without a recorded result: "
                                       "the flwd server stopped (it cancels its runs)")
    assert "Traceback" not in stderr
    assert not _alive(grandchild)
    assert not (data_dir / "serve.sock").exists()


def test_a_closed_stdout_cancels_the_run(workspace: Path, data_dir: Path,
                                         server: Server) -> None:
    with subprocess.Popen(f"{' '.join(FLWD)} examples long | head -n 1", shell=True,
                          cwd=workspace, env=flwd_env(data_dir, FLWD_GRACE=GRACE),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as pipeline:
        stdout, _ = pipeline.communicate(timeout=60)
    assert stdout.startswith(b"long: ")
    runs = json.loads(_local_request(data_dir, "GET", "/runs")[1])
    assert len(runs) == 1
    wait_until(lambda: _run(data_dir, runs[0]["id"])["status"] == "canceled", "the cancel")
    canceled = next(event["data"] for event in _events(data_dir, runs[0]["id"])
                    if event["type"] == "run.canceled")
    assert canceled["reason"] == "output closed (broken pipe)"


def test_the_words_form_is_refused_over_tcp(workspace: Path, server_factory: Any) -> None:
    server = server_factory("--dev")
    response = httpx.post(f"{server.url}/runs", timeout=30, json={
        "words": ["demo", "--name", "x"], "scripts_root": str(workspace / "scripts"),
        "protocol": 1, "env": {}}, headers={"Authorization": "Bearer dev-token"})
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "words.local.only"


def test_another_users_process_is_closed_before_a_byte_is_read(
        data_dir: Path, server: Server) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to connect as another user (SO_PEERCRED's refusal)")
    # The mode (and the folders above, 0700) would stop the other user first: a link to
    # the socket where anyone may reach it, with a mode anyone may use, tests the check.
    os.chmod(data_dir / "serve.sock", 0o666)
    reachable = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        os.chmod(reachable, 0o755)
        path = reachable / "serve.sock"
        os.link(data_dir / "serve.sock", path)
        _connect_as_nobody(path)
    finally:
        shutil.rmtree(reachable)
    # The owner is answered, without a token.
    with socket.socket(socket.AF_UNIX) as mine:
        mine.connect(str(data_dir / "serve.sock"))
        mine.sendall(b"GET /jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert mine.recv(100).startswith(b"HTTP/1.1 200")


def _connect_as_nobody(path: Path) -> None:
    child = subprocess.run(
        [sys.executable, "-c", (
            "import os, socket, sys\n"
            "os.setgid(65534); os.setuid(65534)\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            f"s.connect({str(path)!r})\n"
            "try:\n"
            "    s.sendall(b'GET /jobs HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')\n"
            "    sys.stdout.write(repr(s.recv(100)))\n"
            "except (ConnectionResetError, BrokenPipeError):\n"
            "    sys.stdout.write('closed')\n")],
        capture_output=True, text=True, timeout=30, check=False)
    assert child.returncode == 0, child.stderr
    assert child.stdout in ("b''", "closed")  # closed at once, nothing answered


def test_an_edit_just_before_the_command_line_is_seen_and_an_old_one_too(
        workspace: Path, data_dir: Path, server: Server) -> None:
    # The server answers from its cached catalog only while the job's own files are as
    # its last check saw them (a few stats, not a walk of the tree): an edit of a moment
    # ago (racy) and one whose stamp was set back (its size changed) are both seen.
    write_job(workspace, "greet", "interpreter: bash\nargspec:\n  args:\n"
              "    - {name: who, type: string, default: world}\n",
              {"100_main.sh": 'echo "hello $who"\n'})
    past = time.time() - 3600
    for path in (workspace / "scripts").rglob("*"):
        os.utime(path, (past, past))
    os.utime(workspace / "scripts", (past, past))
    assert _flwd(["greet"], workspace, data_dir).stdout == b"hello world\n"
    config = workspace / "scripts" / "greet" / "config.d" / "config.yaml"
    config.write_text(config.read_text().replace("world", "there"))
    assert _flwd(["greet"], workspace, data_dir).stdout == b"hello there\n"
    config.write_text(config.read_text().replace("there", "everyone"))
    os.utime(config, (past, past))
    assert _flwd(["greet"], workspace, data_dir).stdout == b"hello everyone\n"
    assert _handed_over(server) == 3
