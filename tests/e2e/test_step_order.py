"""Steps without ``needs`` form a chain in declaration order (issue 14, item 11).

The reference runs a DAG job's steps one after another; flwd used to start every
step that declared no ``needs`` at once, so the reference's own demo (init writes a
file, run reads it) failed about 4 times in 10. Rule: no step declares ``needs`` →
a chain in file order; one step declares ``needs`` → a graph.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli, write_job

CHAIN = """\
interpreter: bash
composition: steps
steps:
  - {id: init, script: init.sh}
  - {id: run, script: run.sh}
  - {id: report, script: report.sh}
"""


def _events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def _seq(events: list[dict], kind: str, step: str) -> int:
    return next(e["seq"] for e in events if e["type"] == kind and e["data"]["step"] == step)


def test_steps_without_needs_run_one_after_another(workspace: Path, data_dir: Path) -> None:
    write_job(workspace, "chain", CHAIN, {
        "init.sh": "echo ready > chain.txt\n",
        "run.sh": "cat chain.txt\n",
        "report.sh": "echo done\n",
    })
    result = run_cli(["chain", "--json"], cwd=workspace, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    events = _events(result.stdout)
    # Each step starts only once the one declared before it has finished.
    assert _seq(events, "step.finish", "init") < _seq(events, "step.start", "run")
    assert _seq(events, "step.finish", "run") < _seq(events, "step.start", "report")
    lines = [e["data"]["message"] for e in events if e["type"] == "step.log"]
    assert "ready" in lines


def test_a_failed_link_stops_the_chain(workspace: Path, data_dir: Path) -> None:
    write_job(workspace, "broken", CHAIN, {
        "init.sh": "exit 3\n", "run.sh": "echo never\n", "report.sh": "echo never\n"})
    result = run_cli(["broken", "--json"], cwd=workspace, data_dir=data_dir)
    assert result.returncode == 1
    events = _events(result.stdout)
    assert {e["data"]["step"] for e in events if e["type"] == "step.start"} == {"init"}
    assert events[-1]["data"]["steps"] == {"failed": 1, "skipped": 2}


def test_one_declared_need_makes_a_graph(workspace: Path, data_dir: Path) -> None:
    write_job(workspace, "graph", """\
interpreter: bash
composition: steps
steps:
  - {id: slow, script: slow.sh}
  - {id: free, script: free.sh}
  - {id: last, script: last.sh, needs: [slow]}
""", {
        # ``free`` needs nothing: in a graph it starts beside ``slow``, which waits
        # (bounded) for it to have run.
        "slow.sh": "for _ in $(seq 200); do [ -e free.txt ] && exit 0; "
                   "sleep 0.05; done; exit 9\n",
        "free.sh": "touch free.txt\n",
        "last.sh": "echo last\n",
    })
    result = run_cli(["graph", "--json"], cwd=workspace, data_dir=data_dir)
    assert result.returncode == 0, result.stdout
    events = _events(result.stdout)
    assert _seq(events, "step.start", "free") < _seq(events, "step.finish", "slow")
    assert _seq(events, "step.finish", "slow") < _seq(events, "step.start", "last")
