"""``flwd init KIND PATH`` through the real CLI: the paths it takes, and the interpreter
warning (issue 12, items 9 and 11)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    workspace = tmp_path / "fresh"
    (workspace / "scripts").mkdir(parents=True)
    return workspace


def jobs_under(workspace: Path) -> list[str]:
    return sorted(str(config.parent.parent.relative_to(workspace / "scripts"))
                  for config in (workspace / "scripts").rglob("config.d/config.yaml"))


@pytest.mark.parametrize("path", ["scripts/tools/foo", "./scripts/tools/foo", "tools/foo",
                                  "tools.foo", "ABS/tools/foo"])
def test_a_path_with_or_without_the_scripts_folder_names_the_same_job(
        fresh: Path, data_dir: Path, path: str) -> None:
    path = path.replace("ABS", str(fresh / "scripts"))
    done = run_cli(["init", "sh", path], cwd=fresh, data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    assert jobs_under(fresh) == ["tools/foo"]  # never scripts/scripts/tools/foo
    assert "run it with: flwd tools foo" in done.stdout
    listed = run_cli([":jobs", "--json"], cwd=fresh, data_dir=data_dir)
    assert [job["id"] for job in json.loads(listed.stdout)["jobs"]] == ["tools.foo"]


def test_an_absolute_path_outside_the_scripts_root_is_refused(
        fresh: Path, data_dir: Path, tmp_path: Path) -> None:
    for outside in (str(tmp_path / "elsewhere" / "job"), str(fresh), "/etc/job"):
        done = run_cli(["init", "bash", outside], cwd=fresh, data_dir=data_dir)
        assert done.returncode == 2
        [line] = done.stderr.splitlines()
        assert f"invalid job path '{outside}': it is outside the scripts root" in line
        assert str(fresh / "scripts") in line
    assert jobs_under(fresh) == []
    assert not (tmp_path / "elsewhere").exists()


def test_a_missing_interpreter_is_one_warning_line(fresh: Path, data_dir: Path,
                                                   tmp_path: Path) -> None:
    empty = tmp_path / "bin-empty"
    empty.mkdir()
    done = run_cli(["init", "pwsh", "win/hello"], cwd=fresh, data_dir=data_dir,
                   PATH=str(empty))
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "flwd: warning: 'pwsh' is not on PATH: install it before running this job "
        "(or set 'interpreter:' in its config.d/config.yaml)"]
    assert (fresh / "scripts" / "win" / "hello" / "100_main.ps1").is_file()  # still written

    done = run_cli(["init", "python", "py/hello"], cwd=fresh, data_dir=data_dir,
                   PATH=str(empty))
    assert "'python3' is not on PATH" in done.stderr

    found = tmp_path / "bin-full"
    found.mkdir()
    for name in ("pwsh", "python3", "bash", "sh"):
        (found / name).symlink_to(sys.executable)
    for kind in ("pwsh", "python", "bash", "sh"):
        done = run_cli(["init", kind, f"ok/{kind}"], cwd=fresh, data_dir=data_dir,
                       PATH=str(found))
        assert done.returncode == 0 and done.stderr == "", (kind, done.stderr)


def test_ps_is_pwsh_as_in_flowd(fresh: Path, data_dir: Path) -> None:
    for kind, path in (("ps", "win/one"), ("PS", "win/two"), ("pwsh", "win/three")):
        done = run_cli(["init", kind, path], cwd=fresh, data_dir=data_dir)
        assert done.returncode == 0, done.stderr
    made = {path: sorted(str(f.relative_to(fresh / "scripts" / path))
                         for f in (fresh / "scripts" / path).rglob("*") if f.is_file())
            for path in ("win/one", "win/two", "win/three")}
    assert made["win/one"] == made["win/two"] == made["win/three"]
    assert "100_main.ps1" in made["win/one"]
    assert (fresh / "scripts/win/one/100_main.ps1").read_text() == \
        (fresh / "scripts/win/three/100_main.ps1").read_text()
    listed = run_cli([":jobs", "--json"], cwd=fresh, data_dir=data_dir)
    assert {job["id"] for job in json.loads(listed.stdout)["jobs"]} == {
        "win.one", "win.two", "win.three"}
    unknown = run_cli(["init", "psh", "win/four"], cwd=fresh, data_dir=data_dir)
    assert unknown.returncode == 2
    [line] = unknown.stderr.splitlines()
    assert "unknown job kind 'psh'" in line and "pwsh" in line and "ps is pwsh" in line
