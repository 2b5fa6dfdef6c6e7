"""``flwd __complete``: reference §14.1's contract through the real console script, the
NDJSON shape, cursor errors, and where the workspace comes from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.complete.conftest import FLWD_SCRIPT, Completer, make_contract_workspace
from tests.conftest import flwd_env


def test_contract_root_segments_include_jobs_and_aliases_but_not_verbs(
        completer: Completer) -> None:
    inserts = completer.inserts("1")
    assert "alpha" in inserts and "ship" in inserts
    assert ":plan" not in inserts
    assert not [i for i in inserts if i.startswith(":")]


def test_contract_prefix_and_colon(completer: Completer) -> None:
    assert completer.candidates("2", "sh") == [
        {"insert": "ship", "display": "ship (alias -> alpha/deploy, Ship it)", "type": "segment"}]
    colon = completer.candidates("2", ":")
    assert {"insert": ":plan", "display": "preview a run (secrets shown as [secret])",
            "type": "segment"} in colon
    assert all(c["insert"].startswith(":") for c in colon)


def test_contract_flags_of_a_job(completer: Completer) -> None:
    flags = completer.candidates("4", "alpha", "deploy", "")
    assert {c["type"] for c in flags} == {"flag"}
    assert {"--env", "--strategy"} <= {c["insert"] for c in flags}
    assert completer.inserts("4", "alpha", "deploy", "--", "--e") == ["--env"]
    assert completer.inserts("4", "alpha", "deploy", "--e") == ["--env"]  # without `--` too


def test_contract_values_of_a_pending_flag(completer: Completer) -> None:
    values = completer.candidates("5", "alpha", "deploy", "--", "--env", "")
    assert values == [{"insert": "prod", "display": "prod", "type": "value"},
                      {"insert": "staging", "display": "staging", "type": "value"}]
    assert completer.candidates("5", "alpha", "deploy", "--", "--env", "p") == [
        {"insert": "prod", "display": "prod", "type": "value"}]
    assert completer.inserts("5", "alpha", "deploy", "--env", "p") == ["prod"]


def test_after_a_group_word_come_its_children(completer: Completer) -> None:
    # The reference's CODE offered (no) flags here; a port lists the sub-segments.
    assert completer.inserts("3", "alpha", "") == ["build", "deploy"]
    assert completer.inserts("2", "alpha.d") == ["alpha.deploy"]


def test_an_alias_completes_like_its_target(completer: Completer) -> None:
    assert completer.inserts("3", "ship", "--s") == ["--strategy"]
    assert completer.inserts("4", "ship", "--strategy", "b") == ["blue-green"]


def test_lines_are_one_object_each_with_insert_display_type_in_order(
        completer: Completer) -> None:
    done = completer.run("1")
    assert done.returncode == 0 and done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines and done.stdout.endswith("\n")
    for line in lines:
        assert list(json.loads(line)) == ["insert", "display", "type"]
    assert not done.stdout.strip().endswith(":4")  # no cobra directive line


def test_no_candidates_is_success_with_empty_output(completer: Completer) -> None:
    done = completer.run("2", "zzz")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    done = completer.run("5", "alpha", "deploy", "--nope", "")
    assert (done.returncode, done.stdout) == (0, "")


@pytest.mark.parametrize(("args", "message"), [
    ((), "cursor index argument required"),
    (("x", "alpha"), 'invalid cursor index "x"'),
    (("1.5",), 'invalid cursor index "1.5"'),
])
def test_the_cursor_must_be_an_integer(completer: Completer, args: tuple[str, ...],
                                       message: str) -> None:
    done = completer.run(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith(f"flwd: error: {message}")


def test_global_options_before_complete_pick_the_workspace(tmp_path: Path) -> None:
    ws = make_contract_workspace(tmp_path / "elsewhere")
    outside = tmp_path / "outside"
    outside.mkdir()
    completer = Completer(outside, tmp_path / "data")
    assert "alpha" not in completer.inserts("1")  # no scripts/ here or above
    scripts = str(ws / "scripts")
    for before in (("--scripts", scripts), (f"--scripts={scripts}",),
                   ("--data-dir", str(tmp_path / "d2"), "--scripts", scripts)):
        done = completer.run("2", "al", before=before)
        assert done.returncode == 0, done.stderr
        assert [json.loads(line)["insert"] for line in done.stdout.splitlines()] == ["alpha"]
    assert (tmp_path / "d2" / "completion").is_dir()  # --data-dir was honoured
    assert completer.inserts("2", "al", env={"FLWD_SCRIPTS": scripts}) == ["alpha"]
    # Options typed on the completed command line itself win.
    assert completer.inserts("4", "--scripts", scripts, "al") == ["alpha"]


def test_the_workspace_is_found_from_a_subdirectory(contract_ws: Path, tmp_path: Path) -> None:
    deep = contract_ws / "scripts" / "alpha" / "deploy"
    assert Completer(deep, tmp_path / "data").inserts("2", "sh") == ["ship"]


def test_python_dash_m_flwd_and_cli_main_answer_the_same(contract_ws: Path,
                                                        tmp_path: Path) -> None:
    env = flwd_env(tmp_path / "data")
    args = ["__complete", "4", "alpha", "deploy", "--e"]
    via_module = subprocess.run([sys.executable, "-m", "flwd", *args], cwd=contract_ws, env=env,
                                capture_output=True, text=True, check=False, timeout=60)
    via_script = subprocess.run([str(FLWD_SCRIPT), *args], cwd=contract_ws, env=env,
                                capture_output=True, text=True, check=False, timeout=60)
    # flwd.cli.main (what callers of the library use) routes __complete as well.
    via_cli = subprocess.run(
        [sys.executable, "-c", "import sys; from flwd.cli import main; main(sys.argv[1:])",
         "--scripts", str(contract_ws / "scripts"), *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=60)
    assert via_module.returncode == via_script.returncode == via_cli.returncode == 0
    assert via_module.stdout == via_script.stdout == via_cli.stdout
    assert json.loads(via_script.stdout)["insert"] == "--env"


def test_completion_verb_prints_each_script(tmp_path: Path) -> None:
    env = flwd_env(tmp_path / "data")
    for shell, marker in (("bash", "complete -F"), ("zsh", "compdef _flwd flwd"),
                          ("fish", "complete -c flwd"),
                          ("powershell", "Register-ArgumentCompleter -Native")):
        done = subprocess.run([str(FLWD_SCRIPT), "completion", shell], cwd=tmp_path, env=env,
                              capture_output=True, text=True, check=False, timeout=60)
        assert done.returncode == 0, done.stderr
        assert marker in done.stdout and "__complete" in done.stdout
        assert "jq" not in done.stdout.replace("No jq", "")


@pytest.mark.parametrize("args", [["completion", "tcsh"], ["completion"],
                                  ["completion", "bash", "zsh"]])
def test_completion_verb_rejects_anything_else(tmp_path: Path, args: list[str]) -> None:
    done = subprocess.run([str(FLWD_SCRIPT), *args], cwd=tmp_path,
                          env=flwd_env(tmp_path / "data"), capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert "bash, zsh, fish, powershell" in done.stderr
