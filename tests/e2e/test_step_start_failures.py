"""A step that cannot start fails the run with the cause, never crashes it (issue 11, item 11).

Before: a missing interpreter (pwsh, ``interpreter: nosuchinterp``), E2BIG or a missing
working directory ended as ``run crashed: ExceptionGroup(...)`` with no ``step.finish``
and ``run.finish.error: null``. Now the run is ``failed``, its ``step.finish`` and
``run.finish`` name the cause, and the CLI says it in one line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import run_cli, sse_events, write_job

DEV = {"Authorization": "Bearer dev-token"}

CASES = {
    "pwsh": ("job: {id: ps}\n", {"100_main.ps1": "Write-Host hi\n"},
             "interpreter 'pwsh' not found on PATH"),
    "nosuchinterp": ("job: {id: odd}\ninterpreter: nosuchinterp\n", {"100_main.txt": "hi\n"},
                     "interpreter 'nosuchinterp' not found on PATH"),
    "shebang": ("job: {id: bang}\n", {"100_main": "#!/nonexistent/interp\necho hi\n"},
                "interpreter '/nonexistent/interp' (the #! line of "),
    "e2big": ("job: {id: big}\nenv:\n  BIG: '" + "x" * 140_000 + "'\n",
              {"100_main.sh": "#!/bin/bash\necho hi\n"},
              "cannot start bash: the environment variable BIG is 140,005 bytes, over the "
              "kernel's limit of 131,072 for one argument or variable (E2BIG)"),
}


def setup_case(workspace: Path, case: str) -> tuple[str, str]:
    if case == "pwsh" and shutil.which("pwsh"):
        pytest.skip("pwsh is installed here")
    config, scripts, cause = CASES[case]
    write_job(workspace, case, config, scripts)
    return config.split("id: ")[1].split("}")[0], cause


@pytest.mark.parametrize("case", list(CASES))
def test_the_cli_says_why_in_one_line(workspace: Path, data_dir: Path, case: str) -> None:
    job, cause = setup_case(workspace, case)
    done = run_cli([job], cwd=workspace, data_dir=data_dir)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("flwd: run run-") and " failed: " in lines[0]
    assert cause in lines[0]

    events = [json.loads(line) for line in run_cli(
        [job, "--json"], cwd=workspace, data_dir=data_dir).stdout.splitlines()]
    finish = [event for event in events if event["type"] == "step.finish"]
    assert len(finish) == 1 and finish[0]["data"]["status"] == "failed"
    assert cause in finish[0]["data"]["error"]
    assert events[-1]["type"] == "run.finish"
    assert events[-1]["data"]["status"] == "failed"
    assert cause in events[-1]["data"]["error"]


def test_the_api_reports_a_failed_run_with_its_cause(server_factory: Any, workspace: Path) -> None:
    job, cause = setup_case(workspace, "nosuchinterp")
    server = server_factory("--dev")
    created = httpx.post(f"{server.url}/runs", json={"job_id": job}, headers=DEV, timeout=30)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", headers=DEV,
                      timeout=60) as response:
        events = list(sse_events(response.iter_lines()))
    assert [event["type"] for event in events][-2:] == ["step.finish", "run.finish"]
    assert events[-2]["data"]["error"] == cause
    assert events[-1]["data"]["error"] == cause
    run = httpx.get(f"{server.url}/runs/{run_id}", headers=DEV, timeout=10).json()
    assert run["status"] == "failed"
    assert "Traceback" not in "".join(server.log) and "crashed" not in "".join(server.log)
