"""End to end: DAG steps, error handling, timeouts, vars/libs, init, history and logs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import FLWD, flwd_env, run_cli, write_job


def _json_events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_dag_honours_needs_order(workspace: Path, data_dir: Path) -> None:
    result = run_cli(["examples.pipeline", "--json"], cwd=workspace, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    events = _json_events(result.stdout)
    finished = [e["data"]["step"] for e in events if e["type"] == "step.finish"]
    started = [e["data"]["step"] for e in events if e["type"] == "step.start"]
    position = {step: started.index(step) for step in started}
    done = {step: finished.index(step) for step in finished}
    needs = {"build": ["fetch"], "lint": ["fetch"], "test": ["build"], "package": ["test", "lint"]}
    for step, required in needs.items():
        for need in required:
            # A step starts only after everything it needs has finished.
            start_seq = next(e["seq"] for e in events
                             if e["type"] == "step.start" and e["data"]["step"] == step)
            finish_seq = next(e["seq"] for e in events
                              if e["type"] == "step.finish" and e["data"]["step"] == need)
            assert finish_seq < start_seq, (step, need)
    assert set(position) == set(done) == {"fetch", "build", "lint", "test", "package"}


def test_dag_failure_skips_dependents(workspace: Path, data_dir: Path) -> None:
    write_job(workspace, "dagfail", """\
interpreter: bash
composition: steps
error_handling: {policy: continue}
steps:
  - {id: a, script: a.sh}
  - {id: b, script: b.sh, needs: [a]}
  - {id: c, script: c.sh}
""", {"a.sh": "exit 4\n", "b.sh": "echo never\n", "c.sh": "echo independent\n"})
    result = run_cli(["dagfail", "--json"], cwd=workspace, data_dir=data_dir)
    assert result.returncode == 1
    events = _json_events(result.stdout)
    started = {e["data"]["step"] for e in events if e["type"] == "step.start"}
    assert started == {"a", "c"}
    finish = events[-1]["data"]
    assert finish["status"] == "failed" and finish["exit_code"] == 4
    assert finish["steps"] == {"failed": 1, "skipped": 1, "completed": 1}


def test_scripts_run_in_order_and_abort_stops(workspace: Path, data_dir: Path) -> None:
    write_job(workspace, "seq", "interpreter: bash\n", {
        "100_one.sh": "echo one\n", "200_two.sh": "echo two; exit 2\n",
        "300_three.sh": "echo three\n", "helper.sh": "echo not a step\n"})
    result = run_cli(["seq"], cwd=workspace, data_dir=data_dir)
    assert result.returncode == 1
    assert result.stdout.split() == ["one", "two"]


def test_continue_policy_runs_every_script(workspace: Path, data_dir: Path) -> None:
    write_job(workspace, "cont", "interpreter: bash\nerror_handling: {policy: continue}\n", {
        "100_one.sh": "exit 1\n", "200_two.sh": "echo two\n"})
    result = run_cli(["cont"], cwd=workspace, data_dir=data_dir)
    assert result.returncode == 1
    assert result.stdout.split() == ["two"]


def test_retry_policy_retries_then_succeeds(workspace: Path, data_dir: Path) -> None:
    write_job(workspace, "flaky", """\
interpreter: bash
error_handling: {policy: retry, retries: 2, retry_backoff: 0}
""", {"100_flaky.sh": """\
n=$(cat "$FLWD_RUN_DIR/count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$FLWD_RUN_DIR/count"
echo "attempt $n"; [ "$n" -ge 3 ]
"""})
    result = run_cli(["flaky", "--json"], cwd=workspace, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    attempts = [e["data"]["attempt"] for e in _json_events(result.stdout)
                if e["type"] == "step.start"]
    assert attempts == [1, 2, 3]


def test_timeout_is_honoured(workspace: Path, data_dir: Path) -> None:
    write_job(workspace, "slow", "interpreter: bash\ntimeout: 1\n",
              {"100_slow.sh": "echo start; exec sleep 120\n"})
    result = run_cli(["slow", "--json"], cwd=workspace, data_dir=data_dir,
                     FLWD_GRACE="1")
    assert result.returncode == 1
    finish = _json_events(result.stdout)[-1]["data"]
    assert finish["status"] == "failed" and "timed out after 1s" in finish["error"]


def test_vars_and_libs_of_every_level(workspace: Path, data_dir: Path) -> None:
    result = run_cli(["examples", "vars", "--who", "Bob"], cwd=workspace, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "vars: Hi, Bob!"


def test_environment_is_not_inherited(workspace: Path, data_dir: Path) -> None:
    write_job(workspace, "envcheck", "interpreter: bash\nenv: {EXTRA: given}\n",
              {"100_env.sh": 'echo "home=${HOME-unset} extra=$EXTRA umask=$(umask)"\n'})
    result = run_cli(["envcheck"], cwd=workspace, data_dir=data_dir, HOME="/root")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "home=unset extra=given umask=0077"


def test_env_inheritance_is_denied_in_secure_profile(workspace: Path, data_dir: Path) -> None:
    write_job(workspace, "inherit", "interpreter: bash\nenv_inheritance: true\n",
              {"100.sh": "true\n", "100_x.sh": "echo $HOME\n"})
    denied = run_cli(["inherit"], cwd=workspace, data_dir=data_dir)
    assert denied.returncode == 2
    assert "environment inheritance not permitted in secure profile" in denied.stderr
    allowed = run_cli(["inherit", "--profile", "disabled"], cwd=workspace, data_dir=data_dir,
                      HOME="/home/someone")
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.strip() == "/home/someone"


def test_unknown_profile_is_a_usage_error(workspace: Path, data_dir: Path) -> None:
    result = run_cli(["demo", "--name", "x", "--profile", "lax"], cwd=workspace, data_dir=data_dir)
    assert result.returncode == 2
    assert "invalid security profile 'lax'" in result.stderr


def test_runs_and_logs_read_the_journal(workspace: Path, data_dir: Path) -> None:
    run_cli(["demo", "--name", "first"], cwd=workspace, data_dir=data_dir)
    run_cli(["examples.fail"], cwd=workspace, data_dir=data_dir)
    listing = run_cli([":runs", "--json"], cwd=workspace, data_dir=data_dir)
    runs = json.loads(listing.stdout)
    assert [(r["job_id"], r["status"]) for r in runs] == [("examples.fail", "failed"),
                                                          ("demo", "completed")]
    only_demo = json.loads(run_cli([":runs", "--job", "demo", "--json"], cwd=workspace,
                                   data_dir=data_dir).stdout)
    assert [r["job_id"] for r in only_demo] == ["demo"]
    logs = run_cli([":logs", runs[1]["id"]], cwd=workspace, data_dir=data_dir)
    assert logs.returncode == 0
    assert "demo: Hello, first!" in logs.stdout
    as_json = run_cli([":logs", runs[1]["id"][:-3], "--json"], cwd=workspace, data_dir=data_dir)
    assert [json.loads(line)["type"] for line in as_json.stdout.splitlines()][-1] == "run.finish"
    ambiguous = run_cli([":logs", "run-"], cwd=workspace, data_dir=data_dir)
    assert ambiguous.returncode == 2 and "ambiguous" in ambiguous.stderr
    missing = run_cli([":logs", "run-nope"], cwd=workspace, data_dir=data_dir)
    assert missing.returncode == 2 and "no run 'run-nope'" in missing.stderr


def test_logs_follow_streams_a_run_of_another_process(workspace: Path, data_dir: Path) -> None:
    write_job(workspace, "gated", "interpreter: bash\nargspec: {args: [{name: gate, type: string}]}\n",
              {"100_gate.sh": 'echo before; read -r _ < "$gate"; echo after\n'})
    import os

    fifo = workspace / "gate.fifo"
    os.mkfifo(fifo)
    env = flwd_env(data_dir)
    with subprocess.Popen([*FLWD, "gated", "--gate", str(fifo), "--json"], cwd=workspace, env=env,
                          stdout=subprocess.PIPE, text=True) as runner:
        assert runner.stdout is not None
        run_id = ""
        for line in runner.stdout:
            event = json.loads(line)
            run_id = event["run_id"]
            if event["data"].get("message") == "before":
                break
        with subprocess.Popen([*FLWD, ":logs", run_id, "--follow"], cwd=workspace, env=env,
                              stdout=subprocess.PIPE, text=True) as follower:
            assert follower.stdout is not None
            assert follower.stdout.readline() == "before\n"
            with open(fifo, "w") as gate:
                gate.write("go\n")
            assert follower.stdout.readline() == "after\n"
            assert follower.wait(timeout=30) == 0
        runner.communicate(timeout=30)


def test_init_scaffolds_runnable_jobs(tmp_path: Path, data_dir: Path) -> None:
    workspace = tmp_path / "fresh"
    workspace.mkdir()
    for kind, path in [("bash", "tools/hello"), ("sh", "tools.plain"), ("python", "py")]:
        created = run_cli(["init", kind, path], cwd=workspace, data_dir=data_dir)
        assert created.returncode == 0, created.stderr
    again = run_cli(["init", "bash", "tools/hello"], cwd=workspace, data_dir=data_dir)
    assert again.returncode == 2 and "already exists" in again.stderr
    escape = run_cli(["init", "bash", "../outside"], cwd=workspace, data_dir=data_dir)
    assert escape.returncode == 2 and "invalid job path" in escape.stderr
    assert run_cli(["tools", "hello", "--who", "Ann"], cwd=workspace,
                   data_dir=data_dir).stdout.strip() == "Hello, Ann!"
    assert run_cli(["tools", "plain"], cwd=workspace, data_dir=data_dir).stdout.strip() == \
        "Hello, world!"
    assert run_cli(["py", "--who", "Py"], cwd=workspace, data_dir=data_dir).stdout.strip() == \
        "Hello, Py!"


def test_job_help_lists_typed_flags(workspace: Path, data_dir: Path) -> None:
    result = run_cli(["demo", "--help"], cwd=workspace, data_dir=data_dir)
    assert result.returncode == 0
    assert "--name NAME" in result.stdout and "required" in result.stdout
    assert "--secret_token" in result.stdout and "secret" in result.stdout
