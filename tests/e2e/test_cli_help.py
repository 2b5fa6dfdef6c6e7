"""Help and errors name only flags that exist, in one style for verbs and jobs (issue 12 item 10)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import run_cli, write_job

VERBS = [":jobs", ":plan", ":runs", ":logs", ":cancel", ":serve", ":gc", ":sources list",
         ":sources add", ":sources refresh", ":sources remove", ":tokens create",
         ":tokens list", ":tokens revoke", ":kv get", ":kv put", ":kv delete", ":kv list",
         ":schedules list", ":schedules pause", ":schedules resume", ":schedules trigger",
         ":db migrate", ":db status", "init"]


@pytest.mark.parametrize("verb", VERBS)
def test_verb_help_shows_only_real_flags_in_the_job_help_style(
        workspace: Path, data_dir: Path, verb: str) -> None:
    shown = run_cli([*verb.split(), "--help"], cwd=workspace, data_dir=data_dir)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert text.startswith(f"usage: flwd {verb}"), text
    assert "╭" not in text and "│" not in text  # no boxes: the same plain style as a job's
    assert not re.search(r"--no-no-|--empty-", text), text
    for flag in set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text)) - {"--help"}:
        if flag.startswith("--no-"):
            assert flag in {"--no-metrics", "--no-containers"}, flag
    rows = [line for line in text.splitlines() if line.startswith("  --")]
    for row in rows:  # no line broken in the middle of a row
        assert re.match(r"  --[a-z]", row)


def test_job_help_has_the_same_shape(workspace: Path, data_dir: Path) -> None:
    shown = run_cli(["demo", "--help"], cwd=workspace, data_dir=data_dir)
    assert shown.stdout.startswith("usage: flwd demo [FLAGS]")
    assert "\nArguments:\n" in shown.stdout


@pytest.mark.parametrize(("args", "expected"), [
    ([":logs"], ":logs needs RUN (see 'flwd :logs --help')"),
    ([":cancel"], ":cancel needs RUN (see 'flwd :cancel --help')"),
    (["init", "bash"], "init needs PATH (see 'flwd init --help')"),
    ([":sources", "remove"], ":sources remove needs NAME (see 'flwd :sources remove --help')"),
    ([":schedules", "pause"], ":schedules pause needs NAME (see 'flwd :schedules pause --help')"),
])
def test_a_missing_positional_is_named_as_shown_in_help(
        workspace: Path, data_dir: Path, args: list[str], expected: str) -> None:
    failed = run_cli(args, cwd=workspace, data_dir=data_dir)
    assert failed.returncode == 2
    assert failed.stderr == f"flwd: error: {expected}\n"


def test_an_unknown_verb_lists_every_verb(workspace: Path, data_dir: Path) -> None:
    failed = run_cli([":jbos"], cwd=workspace, data_dir=data_dir)
    assert failed.returncode == 2
    line = failed.stderr.strip()
    assert line.startswith("flwd: error: unknown command ':jbos' (did you mean ':jobs'?)")
    assert "..." not in line
    for verb in (":jobs", ":plan", ":runs", ":logs", ":cancel", ":serve", ":gc", ":sources",
                 ":tokens", "init", "completion"):
        assert verb in line


def test_a_bad_profile_on_the_cli_names_the_flag(workspace: Path, data_dir: Path) -> None:
    failed = run_cli(["demo", "--name", "x", "--profile", "strict"], cwd=workspace,
                     data_dir=data_dir)
    assert failed.returncode == 2
    assert "from --profile" in failed.stderr and "request" not in failed.stderr



def test_a_boolean_flag_is_negated_in_its_own_spelling(workspace: Path, data_dir: Path) -> None:
    write_job(workspace, "snake", "interpreter: bash\nargspec: {args: [{name: dry_run, "
              "type: boolean, default: true}]}\n", {"100_main.sh": 'echo "dry=$ARG_DRY_RUN"\n'})
    shown = run_cli(["snake", "--help"], cwd=workspace, data_dir=data_dir).stdout
    assert "--dry_run, --no-dry_run" in shown
    ran = run_cli(["snake", "--no-dry_run"], cwd=workspace, data_dir=data_dir)
    assert ran.returncode == 0 and "dry=false" in ran.stdout


@pytest.mark.parametrize(("job", "args", "expected"), [
    ("examples.fail", ["--bogus", "1"], "--bogus: unknown flag"),
    ("demo", ["--name", "x", "--nme", "bob"], "--nme: unknown flag (did you mean '--name'?)"),
    ("examples.fail", ["-x", "1"], "-x: unknown flag"),
])
def test_an_unknown_flag_is_one_problem_with_its_value(
        workspace: Path, data_dir: Path, job: str, args: list[str], expected: str) -> None:
    """The word after an unknown flag is its value, not a second problem (issue 12 item 5)."""
    failed = run_cli([job, *args], cwd=workspace, data_dir=data_dir)
    assert failed.returncode == 2
    assert failed.stderr.splitlines() == [
        f"flwd: error: invalid arguments for job {job}: {expected} "
        f"(run 'flwd {job} --help' for its flags)"]
    assert "unexpected argument" not in failed.stderr
