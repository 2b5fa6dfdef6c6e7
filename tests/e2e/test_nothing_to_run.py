"""A job with nothing to run (no ``NNN_*`` script, no ``composition: steps``), with the
real CLI and a real server, on the reference's own fixtures (§17 tests 2, 4, 7, 12).

As in the reference, such a job is listed, planned and run, and its runs complete with
zero steps; flwd also warns, naming the files that do not run and the fix, wherever the
job shows up: ``:jobs`` (stderr), ``:jobs --json`` and ``GET /discovery`` warnings, plans
(a ``policy_findings`` entry), and the run's ``run.start`` (so a live run and ``:logs``
print it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import run_cli, sse_events

AUTH = {"Authorization": "Bearer dev-token"}
CODE = "job.nothing.to.run"
#: The reference e2e suite's ``setupWorkspace``: a ``hello.sh`` (not ``NNN_*``) and
#: ``steps:`` without ``composition: steps``.
REFERENCE_CONFIG = """\
version: v1
job:
  id: demo
  name: Demo Job
  summary: Prints greeting
argspec:
  args:
    - name: name
      type: string
      required: true
steps:
  - id: greet
    script: scripts/demo/hello.sh
"""
WARNING = (
    "job 'demo' has nothing to run (its runs complete with zero steps): hello.sh is not "
    "named NNN_* (three digits and '_'), so it never runs, and its 1 step in 'steps:' is "
    "ignored without 'composition: steps'; add 'composition: steps' to run the steps, or "
    "rename hello.sh to 100_hello.sh")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The reference's e2e workspace (overrides the bundled one of tests/conftest.py)."""
    job = tmp_path / "ws" / "scripts" / "demo"
    (job / "config.d").mkdir(parents=True)
    (job / "config.d" / "config.yaml").write_text(REFERENCE_CONFIG)
    hello = job / "hello.sh"
    hello.write_text('#!/usr/bin/env bash\necho "Hello ${name:-world}" > '
                     '"$FLWD_RUN_DIR/hello.txt"\n')
    hello.chmod(0o755)
    return tmp_path / "ws"


def test_jobs_lists_it_with_one_warning(workspace: Path, data_dir: Path) -> None:
    listed = run_cli([":jobs", "--json"], cwd=workspace, data_dir=data_dir)
    assert listed.returncode == 0, listed.stderr
    # The reference's test parses stdout and stderr together: the warning is in the JSON only.
    assert listed.stderr == ""
    document = json.loads(listed.stdout)
    assert [(job["id"], job["name"], job["summary"]) for job in document["jobs"]] == [
        ("demo", "Demo Job", "Prints greeting")]
    assert document["errors"] == []
    assert document["warnings"] == [{"path": "scripts/demo/config.d/config.yaml",
                                     "warning": WARNING, "code": CODE}]
    table = run_cli([":jobs"], cwd=workspace, data_dir=data_dir)
    assert table.returncode == 0
    assert [line.split() for line in table.stdout.splitlines()] == [
        ["ID", "NAME", "SUMMARY"], ["demo", "Demo", "Job", "Prints", "greeting"]]
    # Its line carries its code, as every problem :jobs reports on stderr.
    assert table.stderr == (f"flwd: warning: scripts/demo/config.d/config.yaml: {WARNING} "
                            f"[{CODE}]\n")


def test_a_run_completes_with_zero_steps_and_says_why(workspace: Path, data_dir: Path) -> None:
    ran = run_cli(["demo", "--name", "Casey"], cwd=workspace, data_dir=data_dir)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == ""
    assert ran.stderr == f"flwd: warning: {WARNING}\n"
    logs = run_cli([":logs", "last", "--json"], cwd=workspace, data_dir=data_dir)
    records = [json.loads(line) for line in logs.stdout.splitlines()]
    assert [record["type"] for record in records] == ["run.start", "run.finish"]
    start, finish = records[0]["data"], records[1]["data"]
    assert start["steps"] == [] and start["composition"] == "scripts"
    assert start["warnings"] == [{"code": CODE, "level": "warning", "message": WARNING}]
    assert (finish["status"], finish["exit_code"], finish["steps"]) == ("completed", 0, {})
    replay = run_cli([":logs", "last"], cwd=workspace, data_dir=data_dir)
    assert replay.stderr == f"flwd: warning: {WARNING}\n"
    # Its arguments are still checked: it is a job like any other.
    refused = run_cli(["demo"], cwd=workspace, data_dir=data_dir)
    assert refused.returncode == 2 and "--name" in refused.stderr


def test_its_plan_has_zero_steps_and_the_warning_as_a_finding(workspace: Path,
                                                              data_dir: Path) -> None:
    planned = run_cli([":plan", "demo", "--name", "x", "--json", "--profile", "permissive"],
                      cwd=workspace, data_dir=data_dir)
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert plan["job_id"] == "demo" and plan["security_profile"] == "permissive"
    assert plan["effective_argspec"]["args"][0]["name"] == "name"
    assert plan["steps"] == []
    assert plan["policy_findings"] == [{"code": CODE, "level": "warning", "message": WARNING}]
    human = run_cli([":plan", "demo", "--name", "x"], cwd=workspace, data_dir=data_dir)
    lines = human.stdout.splitlines()
    assert lines[lines.index("Steps:") + 1] == "  (none)"
    assert f"warning: {WARNING}" in lines


def test_an_alias_to_it_is_a_command(workspace: Path, data_dir: Path) -> None:
    """§17 test 12: ``scripts/demo/build`` (a config alone) and an alias to it."""
    build = workspace / "scripts" / "demo" / "build"
    (build / "config.d").mkdir(parents=True)
    (build / "config.d" / "config.yaml").write_text(
        "version: v1\njob:\n  id: demo.build\n  name: Demo Build\n")
    (workspace / "scripts" / "flwd.yaml").write_text(
        'aliases:\n  - from: "demo/build"\n    to: "build-alias"\n')
    document = json.loads(run_cli([":jobs", "--json"], cwd=workspace,
                                  data_dir=data_dir).stdout)
    assert [alias["name"] for alias in document["aliases"]] == ["build-alias"]
    assert document["alias_invalid"] == {} and document["errors"] == []
    helped = run_cli(["build-alias", "--help"], cwd=workspace, data_dir=data_dir)
    assert helped.returncode == 0, helped.stderr
    assert "alias of demo.build" in helped.stdout
    ran = run_cli(["build-alias"], cwd=workspace, data_dir=data_dir)
    assert ran.returncode == 0, ran.stderr
    assert "job 'demo.build' has nothing to run" in ran.stderr
    completed = run_cli(["__complete", "1", "build"], cwd=workspace, data_dir=data_dir)
    assert '"build-alias"' in completed.stdout


def test_a_server_lists_plans_and_runs_it(dev_server: Any, tmp_path: Path,
                                          data_dir: Path) -> None:
    url = dev_server.url
    listed = httpx.get(f"{url}/jobs", headers=AUTH, timeout=30)
    assert [job["id"] for job in listed.json()] == ["demo"]
    assert listed.headers["X-Flwd-Discovery-Errors"] == "0"
    assert listed.headers["X-Flowd-Discovery-Errors"] == "0"
    issues = httpx.get(f"{url}/discovery", headers=AUTH, timeout=30).json()
    assert issues == {"errors": [], "warnings": [
        {"path": "scripts/demo/config.d/config.yaml", "warning": WARNING, "code": CODE}],
        "alias_collisions": {}, "alias_invalid": {}}  # the dev token sees the aliases
    planned = httpx.post(f"{url}/plans", headers=AUTH, timeout=30,
                         json={"job_id": "demo", "args": {"name": "Avery"}})
    assert planned.status_code == 200, planned.text
    assert planned.json()["steps"] == []
    assert planned.json()["policy_findings"] == [
        {"code": CODE, "level": "warning", "message": WARNING}]
    created = httpx.post(f"{url}/runs", headers=AUTH, timeout=30,
                         json={"job_id": "demo", "args": {"name": "Jordan"}})
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    with httpx.stream("GET", f"{url}/runs/{run_id}/events", headers=AUTH,
                      timeout=60) as response:
        events = list(sse_events(response.iter_lines()))
    assert [event["type"] for event in events] == ["run.start", "run.finish"]
    assert events[0]["data"]["warnings"][0]["code"] == CODE
    assert events[1]["data"]["status"] == "completed" and events[1]["data"]["exit_code"] == 0
    run = httpx.get(f"{url}/runs/{run_id}", headers=AUTH, timeout=30).json()
    assert (run["status"], run["exit_code"]) == ("completed", 0)
    # The CLI in remote mode prints the warning from the server's run.start.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    far = run_cli(["demo", "--name", "Remy"], cwd=elsewhere, data_dir=data_dir,
                  FLWD_SERVER=url, FLWD_TOKEN="dev-token")
    assert far.returncode == 0, far.stderr
    assert far.stderr == f"flwd: warning: {WARNING}\n"
