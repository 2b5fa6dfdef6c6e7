"""``flwd :logs`` renders a run as the live run did, and ``--follow`` exits like the run
(issue 12, items 6 and 7). The real CLI as a subprocess, stdout and stderr in one pipe (as a
terminal shows them) so the interleaving is compared too.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import FLWD, flwd_env, run_cli, write_job

DAG = """\
interpreter: bash
composition: steps
error_handling: {policy: retry, retries: 2, retry_backoff: 0}
steps:
  - {id: prepare, script: steps/prepare.sh}
  - {id: build, script: steps/build.sh, needs: [prepare]}
  - {id: publish, script: steps/publish.sh, needs: [build]}
"""

SCRIPTS = {
    "steps/prepare.sh": "echo out-1; echo err-1 >&2; echo out-2; echo err-2 >&2\n",
    "steps/build.sh": "echo building; echo broken >&2; exit 4\n",
    "steps/publish.sh": "echo never\n",
}


def _combined(args: list[str], cwd: Path, data_dir: Path) -> tuple[int, str]:
    done = subprocess.run([*FLWD, *args], cwd=cwd, env=flwd_env(data_dir, NO_COLOR="1"),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=60, check=False)
    return done.returncode, done.stdout


def test_logs_renders_what_the_live_run_rendered(workspace: Path, data_dir: Path) -> None:
    write_job(workspace, "dag", DAG, SCRIPTS)
    live_status, live = _combined(["dag"], workspace, data_dir)
    assert live_status == 1
    status, logs = _combined([":logs", "last"], workspace, data_dir)
    assert status == 0
    assert logs == live
    lines = logs.splitlines()
    # Step prefixes, stderr where the job wrote it, attempts, the skipped step, the reason.
    assert lines[:4] == ["[prepare] out-1", "[prepare] err-1", "[prepare] out-2",
                         "[prepare] err-2"] or sorted(lines[:4]) == sorted(
        ["[prepare] out-1", "[prepare] err-1", "[prepare] out-2", "[prepare] err-2"])
    assert "flwd: step build: attempt 2/3" in lines
    assert "flwd: step build: attempt 3/3" in lines
    assert "flwd: step publish skipped: build failed" in lines
    assert lines[-1].startswith("flwd: run run-") and lines[-1].endswith(
        "failed: step build exited with status 4")
    assert "never" not in logs


def test_a_skipped_step_is_journaled(workspace: Path, data_dir: Path) -> None:
    write_job(workspace, "dag", DAG, SCRIPTS)
    events = [json.loads(line) for line in
              run_cli(["dag", "--json"], cwd=workspace, data_dir=data_dir).stdout.splitlines()]
    finishes = {e["data"]["step"]: e["data"] for e in events if e["type"] == "step.finish"}
    assert finishes["publish"] == {"step": "publish", "status": "skipped",
                                   "reason": "build failed"}
    starts = [e["data"]["attempt"] for e in events
              if e["type"] == "step.start" and e["data"]["step"] == "build"]
    assert starts == [1, 2, 3]
    assert events[-1]["type"] == "run.finish"


def test_logs_follow_exits_like_the_run(workspace: Path, data_dir: Path) -> None:
    failed = run_cli(["examples", "fail"], cwd=workspace, data_dir=data_dir)
    assert failed.returncode == 1
    assert run_cli([":logs", "last", "--follow"], cwd=workspace, data_dir=data_dir).returncode == 1
    assert run_cli([":logs", "last"], cwd=workspace, data_dir=data_dir).returncode == 0
    assert run_cli(["demo", "--name", "x"], cwd=workspace, data_dir=data_dir).returncode == 0
    assert run_cli([":logs", "last", "--follow"], cwd=workspace, data_dir=data_dir).returncode == 0


def test_logs_follow_of_a_canceled_run_exits_like_the_run(workspace: Path,
                                                          data_dir: Path) -> None:
    env = flwd_env(data_dir)
    with subprocess.Popen([*FLWD, "examples", "long", "--json"], cwd=workspace, env=env,
                          stdout=subprocess.PIPE, text=True) as runner:
        assert runner.stdout is not None
        run_id = json.loads(runner.stdout.readline())["run_id"]
        with subprocess.Popen([*FLWD, ":logs", run_id, "--follow"], cwd=workspace, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) as follower:
            # `flwd :cancel` from another shell sends the CLI run SIGTERM: it exits 143.
            assert run_cli([":cancel", run_id], cwd=workspace, data_dir=data_dir).returncode == 0
            assert runner.wait(timeout=60) == 143
            assert follower.wait(timeout=60) == 143


def test_policy_warnings_are_shown(workspace: Path, data_dir: Path) -> None:
    """A decision policy allowed with a warning is printed, live and by :logs (issue 12 item 15)."""
    write_job(workspace, "inherits", "interpreter: bash\nenv_inheritance: true\n",
              {"100_main.sh": "echo ran\n"})
    status, live = _combined(["inherits", "--profile", "disabled"], workspace, data_dir)
    assert status == 0, live
    warning = "flwd: warning: policy: environment inheritance allowed (profile disabled)"
    assert warning in live.splitlines()
    assert warning in _combined([":logs", "last"], workspace, data_dir)[1].splitlines()
    quiet = _combined(["inherits", "--profile", "secure"], workspace, data_dir)[1]
    assert "warning" not in quiet
