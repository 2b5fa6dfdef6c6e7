"""Test workspaces hold the bundled scripts/ only: following the README (``flwd init bash
tools/hello`` in the repository) must not change what any test sees (issue 12, item 21)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BUNDLED_SCRIPTS, REPO, copy_bundled_scripts, run_cli

BUNDLED_JOBS = ["demo", "demo-container", "examples.fail", "examples.long", "examples.pipeline",
                "examples.python", "examples.vars"]


def job_ids(workspace: Path, data_dir: Path) -> list[str]:
    listed = run_cli([":jobs", "--json"], cwd=workspace, data_dir=data_dir)
    assert listed.returncode == 0, listed.stderr
    return [job["id"] for job in json.loads(listed.stdout)["jobs"]]


def test_a_users_own_jobs_stay_out_of_test_workspaces(tmp_path: Path, data_dir: Path) -> None:
    checkout = tmp_path / "checkout"  # a repository after the README's `flwd init`
    shutil.copytree(REPO / "scripts", checkout / "scripts", symlinks=True)
    for path in ("tools/hello", "examples/mine", "demo/nested"):
        done = run_cli(["init", "bash", path], cwd=checkout, data_dir=data_dir)
        assert done.returncode == 0, done.stderr
    (checkout / "scripts" / "flwd.yaml").write_text("aliases: [{from: tools/hello, to: hi}]\n")
    assert "tools.hello" in job_ids(checkout, data_dir)

    built = copy_bundled_scripts(tmp_path / "ws", source=checkout / "scripts")
    assert job_ids(built, data_dir) == BUNDLED_JOBS
    assert sorted(str(p.relative_to(built / "scripts")) for p in
                  (built / "scripts").rglob("*") if p.is_file()) == sorted(BUNDLED_SCRIPTS)


def test_the_workspace_fixture_is_the_bundled_scripts(workspace: Path, data_dir: Path) -> None:
    assert job_ids(workspace, data_dir) == BUNDLED_JOBS
    for rel in BUNDLED_SCRIPTS:  # the same files, with their modes (scripts stay executable)
        copied, original = workspace / "scripts" / rel, REPO / "scripts" / rel
        assert copied.read_bytes() == original.read_bytes()
        assert copied.stat().st_mode == original.stat().st_mode


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(),
                    reason="needs a git checkout")
def test_the_list_is_what_the_repository_tracks() -> None:
    """A file added to (or removed from) the bundled scripts/ must be listed in
    tests/conftest.py's BUNDLED_SCRIPTS too."""
    tracked = subprocess.run(["git", "ls-files", "scripts"], cwd=REPO, capture_output=True,
                             text=True, check=True, timeout=60).stdout.split()
    assert sorted(rel.removeprefix("scripts/") for rel in tracked) == sorted(BUNDLED_SCRIPTS)
