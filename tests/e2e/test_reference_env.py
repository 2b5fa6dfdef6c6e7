"""A step sees the reference's names of its directories (flowd §4.2), CLI and server alike.

``RUN_DIR`` and ``FLOWD_RUN_DIR`` are ``FLWD_RUN_DIR``; ``DATA_DIR`` and
``FLOWD_DATA_DIR`` are ``FLWD_DATA_DIR``. Container steps: tests/containers.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.conftest import run_cli, write_job

DEV = {"Authorization": "Bearer dev-token"}
PRINT_ENV = """\
for name in RUN_DIR FLOWD_RUN_DIR FLWD_RUN_DIR DATA_DIR FLOWD_DATA_DIR FLWD_DATA_DIR; do
  printf '%s=%s\\n' "$name" "$(printenv "$name")"
done
echo step1 > "$RUN_DIR/state.txt"
"""


def _seen(lines: list[str]) -> dict[str, str]:
    return dict(line.split("=", 1) for line in lines if "=" in line)


def _check(seen: dict[str, str], data_dir: Path) -> None:
    run_dir = Path(seen["FLWD_RUN_DIR"])
    assert seen["RUN_DIR"] == seen["FLOWD_RUN_DIR"] == str(run_dir)
    assert run_dir.parent == data_dir.resolve() / "runs" and run_dir.name.startswith("run-")
    assert (run_dir / "state.txt").read_text() == "step1\n"
    assert seen["DATA_DIR"] == seen["FLOWD_DATA_DIR"] == seen["FLWD_DATA_DIR"] \
        == str(data_dir.resolve())


def test_a_cli_run_gets_the_references_names(workspace: Path, data_dir: Path) -> None:
    write_job(workspace, "refenv", "interpreter: bash\n", {"100_main.sh": PRINT_ENV})
    result = run_cli(["refenv"], cwd=workspace, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    _check(_seen(result.stdout.splitlines()), data_dir)


def test_a_served_run_gets_the_references_names(workspace: Path, data_dir: Path,
                                                server_factory) -> None:
    write_job(workspace, "refenv", "interpreter: bash\n", {"100_main.sh": PRINT_ENV})
    server = server_factory("--dev")
    created = httpx.post(f"{server.url}/runs", headers=DEV, json={"job_id": "refenv"},
                         timeout=30)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    lines, finish = [], None
    # The per-run stream ends after run.finish: reading it to the end waits for the run.
    with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", headers=DEV,
                      timeout=60) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if event["type"] == "step.log":
                    lines.append(event["data"]["message"])
                elif event["type"] == "run.finish":
                    finish = event["data"]["status"]
    assert finish == "completed"
    seen = _seen(lines)
    _check(seen, data_dir)
    assert Path(seen["RUN_DIR"]).name == run_id
