"""End to end: the real ``flwd`` CLI as a subprocess, real jobs, a real SQLite Core DB."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.conftest import REPO, run_cli, write_job


def events_of(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_demo_prints_greeting_and_exits_zero(workspace: Path, data_dir: Path) -> None:
    result = run_cli(["demo", "--name", "alice", "--tags", "alpha", "--secret_token", "xyz"],
                     cwd=workspace, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert "demo: Hello, alice!" in result.stdout
    assert "demo: tags: alpha" in result.stdout
    assert "xyz" not in result.stdout + result.stderr


def test_json_emits_ndjson_event_sequence(workspace: Path, data_dir: Path) -> None:
    result = run_cli(["demo", "--name", "alice", "--json"], cwd=workspace, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    events = events_of(result.stdout)
    types = [e["type"] for e in events]
    assert types[0] == "run.start" and types[-1] == "run.finish"
    assert types[1] == "step.start" and types[-2] == "step.finish"
    assert set(types[2:-2]) == {"step.log"}
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(set(e) == {"seq", "run_id", "job_id", "type", "ts", "data"} for e in events)
    assert events[-1]["data"]["status"] == "completed"
    messages = [e["data"]["message"] for e in events if e["type"] == "step.log"]
    assert messages[0] == "demo: Hello, alice!"


def test_secret_appears_nowhere(workspace: Path, data_dir: Path, tmp_path: Path) -> None:
    """The secret is masked in output and absent from events, the DB, env, argv and files."""
    fifo = tmp_path / "go"
    import os

    os.mkfifo(fifo)
    write_job(workspace, "leaky", """\
interpreter: bash
argspec:
  args:
    - {name: api_key, type: string, secret: true}
    - {name: gate, type: string}
""", {"100_leak.sh": """\
echo "pid $$"
echo "token is $api_key"
echo "args $FLWD_ARGS_JSON"
read -r _ < "$gate"
cat "$ARG_API_KEY_FILE"; echo
"""})
    secret = "xyz-Secret-7741"
    import subprocess

    from tests.conftest import FLWD, flwd_env

    with subprocess.Popen([*FLWD, "leaky", "--api_key", secret, "--gate", str(fifo), "--json"],
                          cwd=workspace, env=flwd_env(data_dir), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as process:
        _check_secret_run(process, secret, fifo, data_dir)


def _check_secret_run(process, secret: str, fifo: Path, data_dir: Path) -> None:
    assert process.stdout is not None
    pid = None
    lines = []
    for line in process.stdout:
        lines.append(line)
        event = json.loads(line)
        if event["type"] == "step.log" and event["data"]["message"].startswith("pid "):
            pid = int(event["data"]["message"].split()[1])
            break
    assert pid is not None
    # The job is blocked on the fifo: inspect its environment and argv now.
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert secret.encode() not in environ
    assert secret.encode() not in cmdline
    args_json = next(v for v in environ.split(b"\0") if v.startswith(b"FLWD_ARGS_JSON="))
    assert b'"api_key":"[secret]"' in args_json
    with open(fifo, "w") as gate:
        gate.write("go\n")
    # Not communicate(): it bypasses the buffer the loop above already filled.
    rest = process.stdout.read()
    assert process.stderr is not None
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 0, stderr
    output = "".join(lines) + rest
    assert secret not in output + stderr
    messages = [e["data"].get("message") for e in events_of(output) if e["type"] == "step.log"]
    assert "token is [secret]" in messages
    assert messages[-1] == "[secret]"  # even `cat` of the secret file is masked
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert not list(data_dir.glob("runs/*/secrets/*")), "secret files must be removed"


def test_readme_demo_command_leaves_no_trace_of_secret(workspace: Path, data_dir: Path) -> None:
    result = run_cli(["demo", "--name", "alice", "--tags", "alpha", "--secret_token", "xyz",
                      "--json"], cwd=workspace, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert "xyz" not in result.stdout + result.stderr
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert b"xyz" not in path.read_bytes(), path


def test_failing_job_exits_one_and_is_journaled(workspace: Path, data_dir: Path) -> None:
    result = run_cli(["examples", "fail", "--code", "7"], cwd=workspace, data_dir=data_dir)
    assert result.returncode == 1
    assert "fail: about to fail with status 7" in result.stderr
    conn = sqlite3.connect(data_dir / "flwd.db")
    status, exit_code = conn.execute("SELECT status, exit_code FROM runs").fetchone()
    assert (status, exit_code) == ("failed", 7)


def test_bad_flag_unknown_job_and_broken_config_exit_two_with_one_line(
        workspace: Path, data_dir: Path) -> None:
    bad_flag = run_cli(["demo", "--nmae", "alice"], cwd=workspace, data_dir=data_dir)
    unknown = run_cli(["dmeo"], cwd=workspace, data_dir=data_dir)
    missing = run_cli(["demo"], cwd=workspace, data_dir=data_dir)
    wrong_type = run_cli(["examples.fail", "--code", "many"], cwd=workspace, data_dir=data_dir)
    write_job(workspace, "broken", "interpreter: [unclosed\n", {"100_x.sh": "true\n"})
    broken = run_cli(["broken"], cwd=workspace, data_dir=data_dir)
    for result, needle in [(bad_flag, "--nmae"), (unknown, "dmeo"), (missing, "--name"),
                           (wrong_type, "--code"), (broken, "broken")]:
        assert result.returncode == 2, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.startswith("flwd: error")]
        assert len(lines) == 1, result.stderr
        assert needle in lines[0]
        assert "Traceback" not in result.stderr
    assert "did you mean '--name'" in bad_flag.stderr
    assert "did you mean 'demo'" in unknown.stderr


def test_broken_config_does_not_hide_other_jobs(workspace: Path, data_dir: Path) -> None:
    write_job(workspace, "broken", "argspec: {args: [{name: x, type: strin}]}\n", {})
    result = run_cli([":jobs", "--json"], cwd=workspace, data_dir=data_dir)
    assert result.returncode == 0
    listing = json.loads(result.stdout)
    assert "demo" in [job["id"] for job in listing["jobs"]]
    assert any("broken" in error["path"] for error in listing["errors"])


def test_plan_json_redacts_secrets(workspace: Path, data_dir: Path) -> None:
    result = run_cli([":plan", "demo", "--name", "a", "--secret_token", "xyz", "--json"],
                     cwd=workspace, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["job_id"] == "demo"
    assert plan["resolved_args"]["secret_token"] == "[secret]"
    assert plan["resolved_args"]["name"] == "a"
    assert plan["security_profile"] == "secure"
    assert plan["steps"][0]["command"] == "bash scripts/demo/100_main.sh"
    assert plan["provenance"]["source"]["ref"] == "scripts/demo"
    assert "xyz" not in result.stdout


def test_readme_commands_run_from_the_repository(tmp_path: Path) -> None:
    """The README's quick start on the bundled scripts/ (the repository itself)."""
    data = tmp_path / "readme-data"
    jobs = run_cli([":jobs"], cwd=REPO, data_dir=data)
    plan = run_cli([":plan", "demo", "--name", "alice"], cwd=REPO, data_dir=data)
    run = run_cli(["demo", "--name", "alice"], cwd=REPO, data_dir=data)
    assert jobs.returncode == plan.returncode == run.returncode == 0
    assert "demo" in jobs.stdout
    assert "Hello, alice!" in run.stdout
