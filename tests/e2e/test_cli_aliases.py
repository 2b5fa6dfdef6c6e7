"""Aliases through the real CLI: ``flwd hello-demo`` runs ``demo``; ``:jobs`` reports every
alias diagnostic code; using a broken alias is a one-line error with that code's fix."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli, write_job

BROKEN = """\
aliases:
  - {from: demo, to: hello-demo, description: Shortcut for demo job}
  - {from: demo, to: ":plan"}
  - {from: demo, to: completion}
  - {from: demo, to: examples.fail}
  - {from: nowhere/job, to: lost}
  - {from: demo, to: twice}
  - {from: examples/fail, to: twice}
  - {from: examples.fail, to: oops}
"""


def test_an_alias_runs_its_target(workspace: Path, data_dir: Path) -> None:
    done = run_cli(["hello-demo", "--name", "Avery"], cwd=workspace, data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["demo: Hello, Avery!", "demo: completed"]
    events = [json.loads(line) for line in run_cli(
        ["hello-demo", "--name", "Avery", "--json"], cwd=workspace,
        data_dir=data_dir).stdout.splitlines()]
    assert {e["job_id"] for e in events} == {"demo"}
    plan = json.loads(run_cli([":plan", "hello-demo", "--name", "A", "--json"],
                              cwd=workspace, data_dir=data_dir).stdout)
    assert plan["job_id"] == "demo"
    assert plan["provenance"]["invoked_path"] == "hello-demo"
    assert plan["provenance"]["alias"] == {"name": "hello-demo", "target_path": "demo",
                                           "description": "Shortcut for demo job"}


def test_alias_help_and_suggestions(workspace: Path, data_dir: Path) -> None:
    helped = run_cli(["hello-demo", "--help"], cwd=workspace, data_dir=data_dir)
    assert helped.returncode == 0
    assert helped.stdout.startswith("usage: flwd hello-demo [FLAGS]")
    assert "alias of demo: Shortcut for demo job" in helped.stdout
    assert "--name NAME" in helped.stdout
    typo = run_cli(["hello-dem", "--name", "x"], cwd=workspace, data_dir=data_dir)
    assert typo.returncode == 2
    assert typo.stderr.strip() == "flwd: error: unknown job 'hello-dem' (did you mean 'hello-demo'?)"


def test_jobs_lists_aliases_and_every_diagnostic(workspace: Path, data_dir: Path) -> None:
    (workspace / "scripts" / "flwd.yaml").write_text(BROKEN)
    listed = run_cli([":jobs", "--json"], cwd=workspace, data_dir=data_dir)
    assert listed.returncode == 0, listed.stderr
    body = json.loads(listed.stdout)
    assert [(a["name"], a["target_id"]) for a in body["aliases"]] == [
        ("hello-demo", "demo"), ("oops", "examples.fail")]
    assert {name: entry["code"] for name, entry in body["alias_invalid"].items()} == {
        ":plan": "alias.reserved", "completion": "alias.reserved",
        "examples.fail": "alias.name.conflict", "lost": "alias.target.invalid"}
    assert sorted(a["target_id"] for a in body["alias_collisions"]["twice"]) == [
        "demo", "examples.fail"]
    human = run_cli([":jobs"], cwd=workspace, data_dir=data_dir)
    assert "hello-demo  demo" in human.stdout
    # An unusable alias is an error on stderr as in the JSON's errors, with its code.
    lines = human.stderr.splitlines()
    assert any(line.startswith("flwd: error: scripts/flwd.yaml: alias name ':plan' is reserved")
               and line.endswith("[alias.reserved]") for line in lines), lines
    assert ("flwd: error: alias 'twice' is declared for several jobs (demo, examples.fail) "
            "[alias.collision]") in lines
    assert not [line for line in lines if line.startswith("flwd: warning:")]


def test_using_a_broken_alias_names_its_problem(workspace: Path, data_dir: Path) -> None:
    (workspace / "scripts" / "flwd.yaml").write_text(BROKEN)
    cases = {"twice": "resolves to several jobs", "lost": "not a job"}
    for name, message in cases.items():
        used = run_cli([name], cwd=workspace, data_dir=data_dir)
        assert used.returncode == 2, (name, used.stderr)
        assert used.stderr.startswith("flwd: error: ") and message in used.stderr
        assert "Traceback" not in used.stderr


def test_a_broken_flwd_yaml_never_hides_the_jobs(workspace: Path, data_dir: Path) -> None:
    (workspace / "scripts" / "flwd.yaml").write_text("aliases: [unclosed\n")
    listed = run_cli([":jobs", "--json"], cwd=workspace, data_dir=data_dir)
    assert listed.returncode == 0
    body = json.loads(listed.stdout)
    assert "demo" in [job["id"] for job in body["jobs"]]
    assert body["aliases"] == []
    assert body["errors"][0]["path"].endswith("flwd.yaml")
    assert run_cli(["demo", "--name", "x"], cwd=workspace, data_dir=data_dir).returncode == 0


def test_an_alias_of_a_nested_job(workspace: Path, data_dir: Path) -> None:
    write_job(workspace, "ops/deep/task", "name: Deep\n", {"100_run.sh": "echo deep-ran\n"})
    (workspace / "scripts" / "flwd.yaml").write_text(
        "aliases:\n  - {from: ops/deep/task, to: deep}\n")
    done = run_cli(["deep"], cwd=workspace, data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    assert "deep-ran" in done.stdout
