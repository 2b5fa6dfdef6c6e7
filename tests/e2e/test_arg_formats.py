"""``format: directory`` / ``format: file`` through the real CLI and a real server: checked
on the host that runs the job, relative to the workspace, one line naming the argument
(issue 12, item 9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import run_cli, write_job

BACKUP = """\
job: {id: backup}
interpreter: bash
argspec:
  args:
    - {name: dest, type: string, format: directory, required: true}
    - {name: manifest, type: string, format: file}
"""


@pytest.fixture
def job_ws(workspace: Path) -> Path:
    write_job(workspace, "backup", BACKUP, {"100_run.sh": 'echo "backing up to $ARG_DEST"\n'})
    (workspace / "target").mkdir()
    (workspace / "notes.txt").write_text("x")
    return workspace


def test_the_cli_checks_paths_from_the_workspace(job_ws: Path, data_dir: Path) -> None:
    hint = f"give an existing path; a relative one starts at {job_ws}, where the job runs"
    for value, what in [("nope", "does not exist"), ("notes.txt", "is not a directory")]:
        for verb in ([], [":plan"]):
            done = run_cli([*verb, "backup", "--dest", value], cwd=job_ws, data_dir=data_dir)
            assert done.returncode == 2, done.stderr
            assert done.stderr.splitlines() == [
                f"flwd: error: invalid arguments for job backup: dest: '{value}' {what} "
                f"(format: directory) ({hint})"], verb
            assert done.stdout == ""
    two = run_cli(["backup", "--dest", "nope", "--manifest", "target"], cwd=job_ws,
                  data_dir=data_dir)
    assert two.returncode == 2 and "2 invalid arguments" in two.stderr
    # From a subdirectory the relative path still means the workspace's (where the job runs).
    ok = run_cli(["backup", "--dest", "target", "--manifest", "notes.txt"],
                 cwd=job_ws / "scripts", data_dir=data_dir)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[0] == "backing up to target"


def test_the_server_checks_paths_on_its_own_host(job_ws: Path, dev_server: Any) -> None:
    headers = {"Authorization": "Bearer dev-token"}
    for route in ("/plans", "/runs"):
        response = httpx.post(dev_server.url + route, headers=headers, timeout=30,
                              json={"job_id": "backup", "args": {"dest": "nope"}})
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["errors"] == [{"arg": "dest",
                                      "message": "'nope' does not exist (format: directory)"}]
        assert problem["detail"].startswith("invalid arguments for job backup: dest: 'nope'")
    listed = httpx.get(dev_server.url + "/runs", headers=headers, timeout=30).json()
    assert listed == []  # nothing was started
    planned = httpx.post(dev_server.url + "/plans", headers=headers, timeout=30,
                         json={"job_id": "backup", "args": {"dest": str(job_ws / "target")}})
    assert planned.status_code == 200, planned.text
