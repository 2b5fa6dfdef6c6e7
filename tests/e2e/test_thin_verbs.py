"""The thin client's verbs (issue 17 item 1): with a local ``flwd :serve`` on the data dir,
``flwd :jobs``, ``:plan``, ``:runs``, ``:logs`` and ``:cancel`` are one request on its Unix
socket, and print and exit exactly as the CLI does in its own process.

Every command line runs twice on the same data — through the server, and with
``FLWD_LOCAL=1`` — as the real console entry point in a subprocess, and the two are
compared byte for byte (no normalising: both read the same runs). The server's request
log says which went through it: a command line the thin client does not take (``--help``,
a malformed option) never reaches it, and runs as it always did.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.complete.conftest import HEAVY, imported
from tests.conftest import FLWD, Server, flwd_env, wait_until, write_job
from tests.e2e.test_thin_client import (
    GRACE,
    _flwd,
    _handed_over,
    _start_long,
    _wait_for_tree,
    _write_special_jobs,
)


@pytest.fixture
def server(server_factory: Any) -> Server:
    return server_factory(FLWD_GRACE=GRACE)


def _same_both_ways(workspace: Path, data_dir: Path, server: Server, words: list[str], *,
                    handed: bool = True, **env: str) -> subprocess.CompletedProcess[bytes]:
    before = _handed_over(server)
    thin = _flwd(words, workspace, data_dir, **env)
    if handed:
        wait_until(lambda: _handed_over(server) > before, f"the server to log {words}")
    local = _flwd(words, workspace, data_dir, local=True, **env)
    assert (thin.returncode, thin.stdout, thin.stderr) == (
        local.returncode, local.stdout, local.stderr), words
    assert b"Traceback" not in thin.stderr
    assert (_handed_over(server) > before) == handed, words
    return thin


HANDED = [
    [":jobs"], [":jobs", "--json"],
    [":runs"], [":runs", "--json"], [":runs", "--all"], [":runs", "--all", "--json"],
    [":runs", "--job", "examples.fail"], [":runs", "--job=demo", "--limit", "1"],
    [":runs", "--status", "failed"], [":runs", "--arg", "name=bo"],
    [":runs", "--arg", "name=bo", "--arg", "name=x"],
    [":runs", "--since", "2020-01-01T00:00:00Z", "--until", "2999-01-01T00:00:00Z"],
    [":logs", "last"], [":logs", "last", "--json"], [":logs", "--follow", "last"],
    [":logs", "{bytes}"], [":logs", "{chain}"], [":logs", "{chain}", "--json"],
    [":logs", "{fail}", "--follow"], [":logs", "{fail}"], [":cancel", "{chain}"],
    [":plan", "demo", "--name", "x"], [":plan", "demo", "--name", "x", "--json"],
    [":plan", "hello-demo", "--name", "y"], [":plan", "token", "--key", "s3"],
    [":plan", "chain", "--profile", "disabled"],
    [":cancel", "last"],
    # errors: one line and the exit status, as in the CLI's process
    [":logs", "run-nosuch"], [":cancel", "run-nosuch"], [":logs", "run-"],
    [":runs", "--limit", "0"], [":runs", "--limit", "5000"], [":runs", "--arg", "oops"],
    [":runs", "--since", "yesterday"], [":plan", "demo"], [":plan", "nosuch"],
    [":plan", "broken"], [":plan", "demo", "--nope", "1"],
    [":plan", "demo", "--name", "x", "--profile", "nope"],
]

NOT_HANDED = [
    [":jobs", "--help"], [":runs", "-h"], [":plan", "demo", "--help"], [":logs"],
    [":logs", "a", "b"], [":runs", "--status", "bogus"], [":runs", "--limit", "x"],
    [":runs", "--limit"], [":runs", "--json", "--json"], [":jobs", "--json=false"],
    [":runs", "--nope"], [":plan"],
    [":logs", "last\udcff"], [":sources", "list"],
    ["--debug", ":runs"], ["--local", ":runs"],
]


def _ids(lines: list[list[str]]) -> list[str]:
    """Printable names of command lines (a word not UTF-8 escaped)."""
    return [" ".join(words).encode("utf-8", "backslashreplace").decode() for words in lines]


@pytest.fixture
def history(workspace: Path, data_dir: Path, server: Server) -> dict[str, str]:
    """Runs of several kinds in the journal (through the server and locally), the last
    one of this workspace ``bytes``' (its output not UTF-8): their ids by name."""
    _write_special_jobs(workspace)
    ids = {}
    for name, words, local in (("bo", ["demo", "--name", "bo"], False),
                               ("fail", ["examples", "fail"], True),
                               ("chain", ["chain"], False),
                               ("x", ["demo", "--name", "x"], True),
                               ("bytes", ["bytes"], False)):
        _flwd(words, workspace, data_dir, local=local)
        last = _flwd([":runs", "--json", "--limit", "1"], workspace, data_dir, local=True)
        ids[name] = json.loads(last.stdout)[0]["id"]
    return ids


def test_verbs_print_and_exit_as_in_the_clis_process(
        workspace: Path, history: dict[str, str], data_dir: Path, server: Server) -> None:
    """Each command line of :data:`HANDED` through the server, of :data:`NOT_HANDED` not
    (one server and one history for all: each command line is a pair of processes)."""
    mismatched = []
    for lines, handed in ((HANDED, True), (NOT_HANDED, False)):
        for words in lines:
            words = [word.format(**history) for word in words]
            try:
                _same_both_ways(workspace, data_dir, server, words, handed=handed)
            except AssertionError as exc:
                mismatched.append(f"{_ids([words])[0]}: {exc}")
    assert mismatched == []


def test_a_server_of_another_workspace_answers_no_verb(
        tmp_path: Path, workspace: Path, data_dir: Path, server: Server) -> None:
    from tests.conftest import copy_bundled_scripts

    other = copy_bundled_scripts(tmp_path / "other")
    _flwd(["demo", "--name", "o"], other, data_dir, local=True)
    for words in ([":runs"], [":jobs"], [":logs", "last"]):
        _same_both_ways(other, data_dir, server, words, handed=False)


def test_a_source_whose_files_are_gone_is_said_as_in_the_clis_process(
        tmp_path: Path, workspace: Path, data_dir: Path, server_factory: Any) -> None:
    """``:jobs`` says it on stderr — where the server's process must not."""
    server = server_factory("--allow-path", str(tmp_path), FLWD_GRACE=GRACE)
    folder = tmp_path / "extra"
    write_job(folder, "tool", "job: {summary: from a source}\n", {"100_main.sh": "echo t\n"})
    status, body = _local_request(data_dir, "POST", "/sources",
                                  {"name": "extra", "type": "local", "ref": str(folder / "scripts")})
    assert status in (200, 201), body
    done = _same_both_ways(workspace, data_dir, server, [":jobs"])
    assert b"extra" in done.stdout
    folder.rename(tmp_path / "moved")
    done = _same_both_ways(workspace, data_dir, server, [":jobs"])
    assert b"source 'extra': its files are gone" in done.stderr


def _local_request(data_dir: Path, method: str, target: str,
                   body: Any = None) -> tuple[int, bytes]:
    from flwd.thin._http import request

    return request(data_dir / "serve.sock", method, target, body)


def test_the_timezone_of_the_next_fires_is_the_clients(
        workspace: Path, data_dir: Path, server: Server) -> None:
    """``:jobs`` shows a schedule's next fire on the system's clock: with another ``TZ``
    than the server's, the client answers it itself."""
    write_job(workspace, "nightly", "job: {summary: scheduled}\nschedule:\n"
              "  - {name: nightly, cron: '0 3 * * *'}\n", {"100_main.sh": "echo n\n"})
    _same_both_ways(workspace, data_dir, server, [":jobs"])
    before = _handed_over(server, status=200)
    _same_both_ways(workspace, data_dir, server, [":jobs"], TZ="Asia/Tokyo")
    # The server looked at it, and declined (cli.local): the table is the client's.
    assert _handed_over(server, status=200) == before + 1


def test_logs_follow_exits_as_the_run_did_both_ways(
        workspace: Path, data_dir: Path, server: Server) -> None:
    """``:logs --follow`` of a live run, through the server and in the CLI's process at
    once; ``:cancel`` (through the server) ends the run: both print the same and exit 143
    (a CLI's run cancelled by SIGTERM)."""
    with _start_long(workspace, data_dir) as run:
        run_id, _ = _wait_for_tree(run)
        before = _handed_over(server)
        followers = [subprocess.Popen(
            [*FLWD, ":logs", run_id, "--follow"], cwd=workspace,
            env=flwd_env(data_dir, FLWD_GRACE=GRACE, **({"FLWD_LOCAL": "1"} if local else {})),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE) for local in (False, True)]
        try:
            wait_until(lambda: _handed_over(server) > before, "the thin :logs")
            cancel = _flwd([":cancel", run_id], workspace, data_dir)
            assert (cancel.returncode, cancel.stdout) == (0, f"cancel requested for run "
                                                             f"{run_id}\n".encode())
            outcomes = [follower.communicate(timeout=60) for follower in followers]
            run.communicate(timeout=60)
        finally:
            for follower in followers:
                follower.kill()
                follower.communicate()
    assert run.returncode == 143
    thin, local = ((follower.returncode, *outcome)
                   for follower, outcome in zip(followers, outcomes, strict=True))
    assert thin == local
    assert thin[0] == 143
    assert b"flwd: canceling run" in thin[2]


def test_ctrl_c_stops_logs_follow_as_in_the_clis_process(
        workspace: Path, data_dir: Path, server: Server) -> None:
    with _start_long(workspace, data_dir) as run:
        run_id, _ = _wait_for_tree(run)
        results = []
        start = _handed_over(server)
        for local in (False, True):
            before = _handed_over(server)
            follower = subprocess.Popen([*FLWD, ":logs", run_id, "--follow", "--json"],
                                        cwd=workspace, env=flwd_env(
                                            data_dir, **({"FLWD_LOCAL": "1"} if local else {})),
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                assert follower.stdout is not None
                json.loads(follower.stdout.readline())  # the replay is under way
                if not local:
                    wait_until(lambda seen=before: _handed_over(server) > seen, "the thin :logs")
                follower.send_signal(signal.SIGINT)
                _, stderr = follower.communicate(timeout=30)
            finally:
                follower.kill()
                follower.communicate()
            results.append((follower.returncode, stderr))
        assert _handed_over(server) == start + 1  # the local one did not reach it
        run.send_signal(signal.SIGINT)
        run.communicate(timeout=60)
    # cyclopts ends a verb's Ctrl-C with 130 and no word: the thin client too.
    assert results[0] == results[1] == (130, b"")


def test_the_verbs_thin_path_imports_nothing_heavy(
        workspace: Path, history: dict[str, str], data_dir: Path, server: Server) -> None:
    for words in ([":runs"], [":jobs"], [":logs", "last"], [":plan", "demo", "--name", "i"]):
        done = subprocess.run([str(Path(sys.executable).parent / "flwd"), *words],
                              cwd=workspace, env=flwd_env(data_dir, PYTHONPROFILEIMPORTTIME="1"),
                              capture_output=True, timeout=60, check=False)
        stderr = done.stderr.decode(errors="replace")  # :logs last: output not UTF-8
        assert done.returncode == 0, stderr
        modules = imported(stderr)
        assert "flwd.thin._run" in modules, words
        heavy = sorted(name for name in modules if name.split(".")[0] in HEAVY)
        assert heavy == [], words
        assert not any(name.startswith(("flwd.cli", "flwd.engine", "flwd.jobs", "flwd.store"))
                       for name in modules), words


def test_a_closed_pipe_ends_a_verb_as_in_the_clis_process(
        workspace: Path, data_dir: Path, server: Server) -> None:
    """``flwd :jobs | true``: the CLI's print meets a pipe nobody reads any more and it
    exits 1, quietly; through the server the same."""
    script = f"{' '.join(FLWD)} :jobs | true; echo \"status=${{PIPESTATUS[0]}}\""
    outcomes = []
    for local in (False, True):
        before = _handed_over(server)
        done = subprocess.run(["bash", "-c", script], cwd=workspace, capture_output=True,
                              timeout=60, check=False, env=flwd_env(
                                  data_dir, **({"FLWD_LOCAL": "1"} if local else {})))
        if not local:
            wait_until(lambda seen=before: _handed_over(server) > seen, "the thin :jobs")
        outcomes.append((done.stdout, done.stderr))
    assert outcomes[0] == outcomes[1] == (b"status=1\n", b"")


def test_a_killed_servers_stale_socket_leaves_the_verbs_here(
        workspace: Path, data_dir: Path, server_factory: Any) -> None:
    """A server killed leaves its socket and serve.json behind: the verbs run in the CLI's
    process, and print as they do there."""
    server = server_factory(FLWD_GRACE=GRACE)
    assert _flwd(["demo", "--name", "k"], workspace, data_dir).returncode == 0
    server.stop(signal.SIGKILL)
    assert (data_dir / "serve.sock").exists() and (data_dir / "serve.json").exists()
    for words in ([":runs"], [":logs", "last"], [":jobs", "--json"]):
        stale = _flwd(words, workspace, data_dir)
        local = _flwd(words, workspace, data_dir, local=True)
        assert (stale.returncode, stale.stdout, stale.stderr) == (
            local.returncode, local.stdout, local.stderr), words
        assert stale.returncode == 0, stale.stderr
