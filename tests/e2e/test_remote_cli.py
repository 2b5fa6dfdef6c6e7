"""Remote mode end to end: the real CLI (``--server``/``FLWD_SERVER`` + ``FLWD_TOKEN``)
against a real ``flwd :serve`` subprocess. Output and exit statuses must match local mode.

No sleeps: tests read output lines and events to know when to act.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import FLWD, Server, flwd_env, processes_under, run_cli, write_job

DEV = {"FLWD_TOKEN": "dev-token"}
GRACE = 2.0


def remote(server: Server | str, args: list[str], cwd: Path, data_dir: Path,
           **env: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in remote mode from ``cwd`` (a directory without scripts/)."""
    url = server if isinstance(server, str) else server.url
    return run_cli(args, cwd=cwd, data_dir=data_dir, **{"FLWD_SERVER": url, **DEV, **env})


def popen_remote(server: Server, args: list[str], cwd: Path, data_dir: Path,
                 **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*FLWD, *args], cwd=cwd,
                            env=flwd_env(data_dir, FLWD_SERVER=server.url, **{**DEV, **env}),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def events_of(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def api(server: Server, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, server.url + path,
                         headers={"Authorization": "Bearer dev-token"}, timeout=30, **kwargs)


def without_run_ids(text: str) -> str:
    return re.sub(r"run-[0-9A-Z]{26}", "run-X", text)


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory with no scripts/: nothing can be resolved locally."""
    path = tmp_path / "elsewhere"
    path.mkdir()
    return path


# -- runs --------------------------------------------------------------------------------


def test_remote_run_is_the_same_as_a_local_run(dev_server: Server, workspace: Path,
                                                data_dir: Path, elsewhere: Path) -> None:
    args = ["demo", "--name", "alice", "--tags", "a", "--tags", "b", "--secret_token", "xyz-77"]
    local = run_cli([*args, "--json"], cwd=workspace, data_dir=data_dir)
    far = remote(dev_server, [*args, "--json"], elsewhere, data_dir)
    assert (local.returncode, far.returncode) == (0, 0), far.stderr
    local_events, far_events = events_of(local.stdout), events_of(far.stdout)
    assert [e["type"] for e in far_events] == [e["type"] for e in local_events]
    assert ([e["data"]["message"] for e in far_events if e["type"] == "step.log"]
            == [e["data"]["message"] for e in local_events if e["type"] == "step.log"])
    assert all(set(e) == {"seq", "run_id", "job_id", "type", "ts", "data"} for e in far_events)
    seqs = [e["seq"] for e in far_events]
    assert seqs == sorted(set(seqs))
    # The NDJSON printed is byte for byte the server's own export of the run.
    run_id = far_events[0]["run_id"]
    assert far.stdout == api(dev_server, "GET", f"/runs/{run_id}/events.ndjson").text
    # Human output too.
    local_human = run_cli(args, cwd=workspace, data_dir=data_dir)
    far_human = remote(dev_server, args, elsewhere, data_dir)
    assert far_human.stdout == local_human.stdout
    assert far_human.stderr == local_human.stderr
    for result in (far, far_human):
        assert "xyz-77" not in result.stdout + result.stderr
    assert "xyz-77" not in "".join(dev_server.log)


def test_dag_steps_are_prefixed_like_local(dev_server: Server, workspace: Path, data_dir: Path,
                                           elsewhere: Path) -> None:
    local = run_cli(["examples", "pipeline"], cwd=workspace, data_dir=data_dir)
    far = remote(dev_server, ["examples", "pipeline"], elsewhere, data_dir)
    assert far.returncode == local.returncode == 0
    # Independent steps run in parallel: compare the lines, not their order.
    assert (sorted(without_run_ids(far.stdout).splitlines())
            == sorted(without_run_ids(local.stdout).splitlines()))
    assert far.stdout.startswith("[fetch] ")


def test_exit_statuses_and_errors_match_local(dev_server: Server, workspace: Path,
                                              data_dir: Path, elsewhere: Path) -> None:
    cases = [
        (["examples", "fail"], 1),
        (["demo", "--nmae", "x"], 2),
        (["demo"], 2),
        (["demo", "--name", "x", "--profile", "lax"], 2),
        (["nope", "job"], 2),
    ]
    for args, status in cases:
        local = run_cli(args, cwd=workspace, data_dir=data_dir)
        far = remote(dev_server, args, elsewhere, data_dir)
        assert (local.returncode, far.returncode) == (status, status), (args, far.stderr)
        assert without_run_ids(far.stderr) == without_run_ids(local.stderr), args
        assert far.stdout == local.stdout
        assert "Traceback" not in far.stderr


def test_job_words_and_help_resolve_on_the_server(dev_server: Server, workspace: Path,
                                                  data_dir: Path, elsewhere: Path) -> None:
    write_job(workspace, "hello/world", "interpreter: bash\n",
              {"100_hi.sh": 'echo "hi from $FLWD_RUN_ID"\n'})
    far = remote(dev_server, ["hello", "world"], elsewhere, data_dir)
    assert far.returncode == 0, far.stderr
    assert far.stdout.startswith("hi from run-")
    extra = remote(dev_server, ["hello", "world", "again"], elsewhere, data_dir)
    assert extra.returncode == 2 and "unexpected argument 'again'" in extra.stderr
    local_help = run_cli(["demo", "--help"], cwd=workspace, data_dir=data_dir)
    far_help = remote(dev_server, ["demo", "--help"], elsewhere, data_dir)
    assert far_help.returncode == 0 and far_help.stdout == local_help.stdout


def test_server_url_forms_and_unreachable_server(dev_server: Server, data_dir: Path,
                                                 elsewhere: Path) -> None:
    bare = dev_server.url.removeprefix("http://") + "/"
    result = run_cli(["--server", bare, ":jobs"], cwd=elsewhere, data_dir=data_dir, **DEV)
    assert result.returncode == 0, result.stderr
    assert "demo" in result.stdout
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = run_cli([f"--server=127.0.0.1:{port}", "demo", "--name", "x"], cwd=elsewhere,
                   data_dir=data_dir)
    assert down.returncode == 1
    assert down.stderr.startswith(f"flwd: error: cannot reach the flwd server at "
                                  f"http://127.0.0.1:{port}: ")
    assert len(down.stderr.strip().splitlines()) == 1
    token = run_cli(["--token", "abc", ":jobs"], cwd=elsewhere, data_dir=data_dir)
    assert token.returncode == 2 and "FLWD_TOKEN" in token.stderr


def test_detach_prints_the_run_and_cancel_stops_it(dev_server: Server, data_dir: Path,
                                                   elsewhere: Path) -> None:
    started = remote(dev_server, ["examples", "long", "--detach"], elsewhere, data_dir)
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()
    assert run_id.startswith("run-") and f"flwd :logs {run_id} --follow" in started.stderr
    canceled = remote(dev_server, [":cancel", run_id], elsewhere, data_dir)
    assert canceled.returncode == 0, canceled.stderr
    assert canceled.stdout == f"cancel requested for run {run_id}\n"
    # Following the run waits for its end (no polling, no sleeps).
    followed = remote(dev_server, [":logs", run_id, "--follow", "--json"], elsewhere, data_dir)
    finish = events_of(followed.stdout)[-1]
    assert finish["type"] == "run.finish" and finish["data"]["status"] == "canceled"
    assert not processes_under(f"FLWD_RUN_ID={run_id}")
    again = remote(dev_server, [":cancel", run_id[:-4]], elsewhere, data_dir)
    assert again.returncode == 0 and again.stdout == f"run {run_id} already finished (canceled)\n"
    missing = remote(dev_server, [":cancel", "run-nope"], elsewhere, data_dir)
    assert missing.returncode == 2 and "no run 'run-nope'" in missing.stderr


# -- Ctrl-C ------------------------------------------------------------------------------


def _wait_for_tree(process: subprocess.Popen[str]) -> str:
    """Read NDJSON events until the job reported its grandchild; return the run id."""
    assert process.stdout is not None
    for line in process.stdout:
        event = json.loads(line)
        if event["data"].get("message", "").startswith("long: grandchild"):
            return str(event["run_id"])
    raise AssertionError("the job never reported its process tree")


def test_ctrl_c_cancels_the_remote_run(server_factory: Any, data_dir: Path,
                                       elsewhere: Path) -> None:
    server = server_factory("--dev", FLWD_GRACE=str(GRACE))
    with popen_remote(server, ["examples", "long", "--ignore_term", "--json"], elsewhere,
                      data_dir) as process:
        run_id = _wait_for_tree(process)
        interrupted_at = time.monotonic()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=GRACE + 20)
        elapsed = time.monotonic() - interrupted_at
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert elapsed < GRACE + 3, f"exit took {elapsed:.2f}s"
    types = [event["type"] for event in events_of(stdout)]
    assert "run.canceled" in types and types[-1] == "run.finish"
    assert api(server, "GET", f"/runs/{run_id}").json()["status"] == "canceled"
    assert not processes_under(f"FLWD_RUN_ID={run_id}")


def test_second_ctrl_c_leaves_at_once(server_factory: Any, data_dir: Path,
                                      elsewhere: Path) -> None:
    server = server_factory("--dev", FLWD_GRACE="4")
    with popen_remote(server, ["examples", "long", "--ignore_term", "--json"], elsewhere,
                      data_dir) as process:
        run_id = _wait_for_tree(process)
        process.send_signal(signal.SIGINT)
        assert process.stdout is not None
        for line in process.stdout:  # the first press reached the server
            if json.loads(line)["type"] == "run.canceled":
                break
        interrupted_at = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        elapsed = time.monotonic() - interrupted_at
    assert process.returncode == 130, stderr
    assert elapsed < 2, f"the second Ctrl-C should not wait for the grace ({elapsed:.1f}s)"
    # The server finishes the job: TERM, grace, KILL.
    followed = remote(server, [":logs", run_id, "--follow", "--json"], elsewhere, data_dir)
    assert events_of(followed.stdout)[-1]["data"]["status"] == "canceled"
    assert not processes_under(f"FLWD_RUN_ID={run_id}")


def test_sigterm_exits_143(server_factory: Any, data_dir: Path, elsewhere: Path) -> None:
    server = server_factory("--dev", FLWD_GRACE=str(GRACE))
    with popen_remote(server, ["examples", "long", "--json"], elsewhere, data_dir) as process:
        run_id = _wait_for_tree(process)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=GRACE + 20)
    assert process.returncode == 143, stderr
    assert api(server, "GET", f"/runs/{run_id}").json()["status"] == "canceled"


# -- a dropped event stream ----------------------------------------------------------------


class CuttingProxy:
    """A TCP proxy that cuts the first connection whose response contains ``marker``,
    in the middle of the frame, so the client must resume with Last-Event-ID."""

    def __init__(self, upstream: str, marker: bytes) -> None:
        host, port = upstream.removeprefix("http://").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.marker = marker
        self.cuts = 0
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, response: bool) -> None:
        seen = b""
        try:
            while data := source.recv(65536):
                if response:
                    seen = seen[-len(self.marker):] + data
                    with self.lock:
                        cut = self.cuts == 0 and self.marker in seen
                        if cut:
                            self.cuts += 1
                    if cut:
                        index = data.find(self.marker)
                        target.sendall(data[: max(index, 0) + len(self.marker) // 2])
                        break
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self.listener.close()


def test_a_dropped_event_stream_is_resumed_without_loss_or_duplicates(
        dev_server: Server, workspace: Path, data_dir: Path, elsewhere: Path) -> None:
    write_job(workspace, "chatty", "interpreter: bash\n",
              {"100_chatty.sh": 'for i in $(seq 1 400); do echo "line $i"; done\n'})
    lines = [f"line {i}" for i in range(1, 401)]
    for mode in (["--json"], []):
        proxy = CuttingProxy(dev_server.url, b'"line 150"')
        try:
            result = remote(proxy.url, ["chatty", *mode], elsewhere, data_dir)
        finally:
            proxy.close()
        assert proxy.cuts == 1 and proxy.connections >= 2
        assert result.returncode == 0, result.stderr
        if mode:
            events = events_of(result.stdout)
            assert [e["data"]["message"] for e in events if e["type"] == "step.log"] == lines
            export = api(dev_server, "GET", f"/runs/{events[0]['run_id']}/events.ndjson")
            assert result.stdout == export.text
        else:
            assert result.stdout.splitlines() == lines


# -- verbs -----------------------------------------------------------------------------------


def test_jobs(dev_server: Server, workspace: Path, data_dir: Path, elsewhere: Path) -> None:
    local = json.loads(run_cli([":jobs", "--json"], cwd=workspace, data_dir=data_dir).stdout)
    far = remote(dev_server, [":jobs", "--json"], elsewhere, data_dir)
    assert far.returncode == 0, far.stderr
    listed = json.loads(far.stdout)
    assert set(listed) == set(local)
    assert [job["id"] for job in listed["jobs"]] == [job["id"] for job in local["jobs"]]
    assert [job["args"] for job in listed["jobs"]] == [job["args"] for job in local["jobs"]]
    assert listed["aliases"] == local["aliases"] == [{
        "name": "hello-demo", "target_path": "demo", "target_id": "demo",
        "description": "Shortcut for demo job"}]
    human = remote(dev_server, [":jobs"], elsewhere, data_dir)
    assert human.stdout == run_cli([":jobs"], cwd=workspace, data_dir=data_dir).stdout


def test_an_alias_runs_its_target_remotely_and_provenance_says_so(
        dev_server: Server, workspace: Path, data_dir: Path, elsewhere: Path) -> None:
    far = remote(dev_server, ["hello-demo", "--name", "Avery"], elsewhere, data_dir)
    assert far.returncode == 0, far.stderr
    assert far.stdout == run_cli(["hello-demo", "--name", "Avery"], cwd=workspace,
                                 data_dir=data_dir).stdout
    assert "Hello, Avery!" in far.stdout
    plan = json.loads(remote(dev_server, [":plan", "hello-demo", "--name", "A", "--json"],
                             elsewhere, data_dir).stdout)
    assert plan["provenance"]["invoked_path"] == "hello-demo"
    assert plan["provenance"]["alias"]["target_path"] == "demo"
    helped = remote(dev_server, ["hello-demo", "--help"], elsewhere, data_dir)
    assert helped.stdout.startswith("usage: flwd hello-demo [FLAGS]")


def test_jobs_pages_through_the_whole_catalog(dev_server: Server, workspace: Path,
                                              data_dir: Path, elsewhere: Path) -> None:
    for index in range(210):
        write_job(workspace, f"many/j{index:03d}", "interpreter: bash\n", {"100_x.sh": "true\n"})
    listed = json.loads(remote(dev_server, [":jobs", "--json"], elsewhere, data_dir).stdout)
    ids = [job["id"] for job in listed["jobs"]]
    assert len(ids) == len(set(ids)) == 210 + 7
    assert "many.j209" in ids


def test_plan(dev_server: Server, workspace: Path, data_dir: Path, elsewhere: Path) -> None:
    args = [":plan", "demo", "--name", "x", "--secret_token", "s3cr3t-value"]
    local = run_cli([*args, "--json"], cwd=workspace, data_dir=data_dir)
    far = remote(dev_server, [*args, "--json"], elsewhere, data_dir)
    assert far.returncode == 0, far.stderr
    assert json.loads(far.stdout) == json.loads(local.stdout)
    human = remote(dev_server, args, elsewhere, data_dir)
    assert human.stdout == run_cli(args, cwd=workspace, data_dir=data_dir).stdout
    assert "s3cr3t-value" not in far.stdout + human.stdout
    permissive = json.loads(remote(dev_server, [*args, "--profile", "permissive", "--json"],
                                   elsewhere, data_dir).stdout)
    assert permissive["security_profile"] == "permissive"
    missing = remote(dev_server, [":plan", "demo"], elsewhere, data_dir)
    assert missing.returncode == 2 and "--name" in missing.stderr


@pytest.mark.parametrize("args", [[":plan", "demo"], [":plan", "demo", "--json"],
                                  [":plan", "demo", "--name", "x", "--loud", "maybe"]])
def test_plan_refusals_are_the_same_locally_and_remotely(
        dev_server: Server, workspace: Path, data_dir: Path, elsewhere: Path,
        args: list[str]) -> None:
    """One rule in both modes (issue 12 item 2): a plan checks its arguments as a run does."""
    local = run_cli(args, cwd=workspace, data_dir=data_dir)
    far = remote(dev_server, args, elsewhere, data_dir)
    assert (local.returncode, local.stdout, local.stderr) == (far.returncode, far.stdout, far.stderr)
    assert local.returncode == 2 and local.stdout == ""
    assert len(local.stderr.splitlines()) == 1 and "--" in local.stderr
    answer = api(dev_server, "POST", "/plans", json={"job_id": "demo"})
    assert answer.status_code == 422


def test_runs_and_logs(dev_server: Server, workspace: Path, data_dir: Path,
                       elsewhere: Path) -> None:
    assert remote(dev_server, ["demo", "--name", "first"], elsewhere, data_dir).returncode == 0
    assert remote(dev_server, ["examples", "fail"], elsewhere, data_dir).returncode == 1
    far = remote(dev_server, [":runs", "--json"], elsewhere, data_dir)
    assert far.returncode == 0, far.stderr
    runs = json.loads(far.stdout)
    assert [(r["job_id"], r["status"]) for r in runs] == [("examples.fail", "failed"),
                                                          ("demo", "completed")]
    assert runs == json.loads(run_cli([":runs", "--json"], cwd=workspace,
                                      data_dir=data_dir).stdout)
    only = json.loads(remote(dev_server, [":runs", "--job", "demo", "--json"], elsewhere,
                             data_dir).stdout)
    assert [r["job_id"] for r in only] == ["demo"]
    failed = json.loads(remote(dev_server, [":runs", "--status", "failed", "--limit", "1",
                                            "--json"], elsewhere, data_dir).stdout)
    assert [r["status"] for r in failed] == ["failed"]
    human = remote(dev_server, [":runs"], elsewhere, data_dir)
    assert human.stdout == run_cli([":runs"], cwd=workspace, data_dir=data_dir).stdout

    demo_id = runs[1]["id"]
    for ref in (demo_id, demo_id[:-3]):
        for extra in ([], ["--json"]):
            local = run_cli([":logs", ref, *extra], cwd=workspace, data_dir=data_dir)
            got = remote(dev_server, [":logs", ref, *extra], elsewhere, data_dir)
            assert got.returncode == 0, got.stderr
            assert (got.stdout, got.stderr) == (local.stdout, local.stderr)
    assert "demo: Hello, first!" in got.stdout
    last = remote(dev_server, [":logs", "last"], elsewhere, data_dir)
    # The last line keeps the reason, as the live run printed it (issue 12 item 6).
    assert last.stderr.endswith(f"flwd: run {runs[0]['id']} failed: "
                                "step 100_fail.sh exited with status 3\n")
    ambiguous = remote(dev_server, [":logs", "run-"], elsewhere, data_dir)
    assert ambiguous.returncode == 2 and "ambiguous" in ambiguous.stderr
    missing = remote(dev_server, [":logs", "run-nope"], elsewhere, data_dir)
    assert missing.returncode == 2 and "no run 'run-nope'" in missing.stderr


def test_logs_follow_streams_a_live_run(dev_server: Server, workspace: Path, data_dir: Path,
                                        elsewhere: Path) -> None:
    write_job(workspace, "gated", "interpreter: bash\nargspec: {args: [{name: gate, type: string}]}\n",
              {"100_gate.sh": 'echo before; read -r _ < "$gate"; echo after\n'})
    fifo = workspace / "gate.fifo"
    os.mkfifo(fifo)
    with popen_remote(dev_server, ["gated", "--gate", str(fifo), "--json"], elsewhere,
                      data_dir) as runner:
        assert runner.stdout is not None
        run_id = ""
        for line in runner.stdout:
            event = json.loads(line)
            run_id = event["run_id"]
            if event["data"].get("message") == "before":
                break
        with popen_remote(dev_server, [":logs", run_id, "--follow"], elsewhere,
                          data_dir) as follower:
            assert follower.stdout is not None
            assert follower.stdout.readline() == "before\n"
            with open(fifo, "w") as gate:
                gate.write("go\n")
            assert follower.stdout.readline() == "after\n"
            assert follower.wait(timeout=30) == 0
        runner.communicate(timeout=30)
    assert runner.returncode == 0


# -- tokens ------------------------------------------------------------------------------------


def _token(workspace: Path, data_dir: Path, name: str, *scopes: str) -> str:
    flags = [part for scope in scopes for part in ("--scope", scope)]
    created = run_cli([":tokens", "create", "--name", name, *flags], cwd=workspace,
                      data_dir=data_dir)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def test_tokens(server_factory: Any, workspace: Path, data_dir: Path, elsewhere: Path) -> None:
    full = _token(workspace, data_dir, "ci", "*")
    reader = _token(workspace, data_dir, "reader", "jobs:read")
    server = server_factory()  # not --dev: tokens are required
    wrong = "flwd_not-a-real-token-0123456789"
    for token in (wrong, ""):
        denied = remote(server, ["demo", "--name", "x"], elsewhere, data_dir, FLWD_TOKEN=token)
        assert denied.returncode == 2, denied.stderr
        assert "FLWD_TOKEN" in denied.stderr and server.url in denied.stderr
        assert len(denied.stderr.strip().splitlines()) == 1
        assert wrong not in denied.stdout + denied.stderr
    scoped = remote(server, [":runs"], elsewhere, data_dir, FLWD_TOKEN=reader)
    assert scoped.returncode == 2 and "runs:read" in scoped.stderr
    assert reader not in scoped.stdout + scoped.stderr
    assert remote(server, [":jobs"], elsewhere, data_dir, FLWD_TOKEN=reader).returncode == 0
    ok = remote(server, ["demo", "--name", "x"], elsewhere, data_dir, FLWD_TOKEN=full)
    assert ok.returncode == 0, ok.stderr
    assert "demo: Hello, x!" in ok.stdout
    assert full not in ok.stdout + ok.stderr


# -- local :cancel ----------------------------------------------------------------------------


def _start_local_long(workspace: Path, data_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([*FLWD, "examples", "long", "--json"], cwd=workspace,
                            env=flwd_env(data_dir, FLWD_GRACE=str(GRACE)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_local_cancel_of_a_cli_run_in_another_process(workspace: Path, data_dir: Path) -> None:
    with _start_local_long(workspace, data_dir) as process:
        run_id = _wait_for_tree(process)
        canceled = run_cli([":cancel", run_id], cwd=workspace, data_dir=data_dir)
        assert canceled.returncode == 0, canceled.stderr
        assert canceled.stdout == f"cancel requested for run {run_id}\n"
        stdout, stderr = process.communicate(timeout=GRACE + 20)
    assert process.returncode == 143, stderr  # the owner's SIGTERM path
    assert events_of(stdout)[-1]["data"]["status"] == "canceled"
    assert not processes_under(f"FLWD_RUN_ID={run_id}")
    again = run_cli([":cancel", "last"], cwd=workspace, data_dir=data_dir)
    assert again.stdout == f"run {run_id} already finished (canceled)\n"
    missing = run_cli([":cancel", "run-nope"], cwd=workspace, data_dir=data_dir)
    assert missing.returncode == 2 and "no run 'run-nope'" in missing.stderr


def test_local_cancel_of_a_run_whose_owner_died(workspace: Path, data_dir: Path) -> None:
    with _start_local_long(workspace, data_dir) as process:
        run_id = _wait_for_tree(process)
        process.kill()
        process.communicate(timeout=10)
    canceled = run_cli([":cancel", run_id], cwd=workspace, data_dir=data_dir)
    assert canceled.returncode == 0, canceled.stderr
    assert canceled.stdout.startswith(f"run {run_id} interrupted")
    assert not processes_under(f"FLWD_RUN_ID={run_id}")


def test_local_cancel_of_a_server_run_goes_through_its_socket(
        dev_server: Server, workspace: Path, data_dir: Path, elsewhere: Path) -> None:
    started = remote(dev_server, ["examples", "long", "--detach"], elsewhere, data_dir)
    run_id = started.stdout.strip()
    local = run_cli([":cancel", run_id], cwd=workspace, data_dir=data_dir)
    assert (local.returncode, local.stdout) == (0, f"cancel requested for run {run_id}\n")
    followed = remote(dev_server, [":logs", run_id, "--follow", "--json"], elsewhere, data_dir)
    assert events_of(followed.stdout)[-1]["data"]["status"] == "canceled"


def test_local_cancel_of_a_server_run_it_cannot_reach_points_at_the_server(
        dev_server: Server, workspace: Path, data_dir: Path, elsewhere: Path) -> None:
    started = remote(dev_server, ["examples", "long", "--detach"], elsewhere, data_dir)
    run_id = started.stdout.strip()
    (data_dir / "serve.sock").unlink()  # no way to it but its URL (and a token)
    local = run_cli([":cancel", run_id], cwd=workspace, data_dir=data_dir)
    assert local.returncode == 2
    assert "--server" in local.stderr
    assert remote(dev_server, [":cancel", run_id], elsewhere, data_dir).returncode == 0
    followed = remote(dev_server, [":logs", run_id, "--follow", "--json"], elsewhere, data_dir)
    assert events_of(followed.stdout)[-1]["data"]["status"] == "canceled"


def test_logs_wait_for_a_free_stream_slot(server_factory: Any, data_dir: Path,
                                          elsewhere: Path) -> None:
    """`:logs` against a server at --max-streams retries on 503 streams.busy until served."""
    server = server_factory("--dev", "--max-streams", "1")
    created = httpx.post(f"{server.url}/runs", json={"job_id": "demo", "args": {"name": "x"}},
                         headers={"Authorization": "Bearer dev-token"}, timeout=30)
    run_id = created.json()["id"]
    with httpx.stream("GET", f"{server.url}/events", headers={"Authorization": "Bearer dev-token"},
                      timeout=30) as held:
        assert held.status_code == 200
        with popen_remote(server, [":logs", run_id], elsewhere, data_dir) as logs:
            deadline = time.monotonic() + 30
            refused = 'flwd_stream_refusals_total{kind="ndjson"} 0.0'
            while refused in httpx.get(f"{server.url}/metrics", timeout=10).text:
                assert time.monotonic() < deadline and logs.poll() is None
            held.close()  # the slot comes free while :logs is retrying
            out, err = logs.communicate(timeout=60)
    assert logs.returncode == 0, err
    assert "x" in out
