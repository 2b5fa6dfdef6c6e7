"""``GET /runs/{id}/log.txt``: a run's output as plain text, as its terminal shows it —
against a real server (its memory bound is in tests/reliability/hostile/test_replay_memory.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import write_job

DEV = {"Authorization": "Bearer dev-token"}


def finished_run(server: Any, body: dict[str, Any]) -> str:
    created = httpx.post(f"{server.url}/runs", json=body, headers=DEV, timeout=30)
    assert created.status_code == 201, created.text
    run_id: str = created.json()["id"]
    with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", headers=DEV,
                      timeout=60) as response:
        for _ in response.iter_lines():
            pass  # the stream ends with the run
    return run_id


def output_events(server: Any, run_id: str) -> list[dict[str, Any]]:
    ndjson = httpx.get(f"{server.url}/runs/{run_id}/events.ndjson", headers=DEV, timeout=30)
    events = [json.loads(line) for line in ndjson.text.splitlines()]
    return [event for event in events if event["type"] == "step.log"]


def test_stdout_and_stderr_lines_in_journal_order_unmarked(server_factory: Any,
                                                            workspace: Path) -> None:
    write_job(workspace, "mixed", "interpreter: bash\n", {"100_main.sh": (
        "for i in 1 2 3; do echo \"out $i\"; echo \"err $i\" >&2; done\n"
        "printf 'caf\\xc3\\xa9 \\xe2\\x9c\\x93\\n'\necho\necho 'last'\n")})
    server = server_factory("--dev")
    run_id = finished_run(server, {"job_id": "mixed", "args": {}})
    response = httpx.get(f"{server.url}/runs/{run_id}/log.txt", headers=DEV, timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="mixed-{run_id}.log"')
    assert response.headers["Cache-Control"] == "no-store"
    events = output_events(server, run_id)
    assert {event["data"]["channel"] for event in events} == {"stdout", "stderr"}
    # Exactly the output events' lines, in their order, nothing added (no marks, no
    # status lines): what a terminal shows of stdout and stderr together.
    assert response.text == "".join(event["data"]["message"] + "\n" for event in events)
    # (Which pipe is read first is the kernel's business: the journal's order is the one.)
    assert sorted(response.text.splitlines()) == sorted([
        "out 1", "err 1", "out 2", "err 2", "out 3", "err 3", "café ✓", "", "last"])
    stdout = [line for line in response.text.splitlines() if not line.startswith("err")]
    assert stdout == ["out 1", "out 2", "out 3", "café ✓", "", "last"]


def test_a_steps_job_has_its_lines_tagged_with_their_step(server_factory: Any) -> None:
    server = server_factory("--dev")
    run_id = finished_run(server, {"job_id": "examples.pipeline", "args": {}})
    text = httpx.get(f"{server.url}/runs/{run_id}/log.txt", headers=DEV, timeout=30).text
    events = output_events(server, run_id)
    assert events and text == "".join(
        f"[{event['data']['step']}] {event['data']['message']}\n" for event in events)
    assert {line.split("]")[0] + "]" for line in text.splitlines()} == {
        "[fetch]", "[build]", "[lint]", "[test]", "[package]"}


def test_secrets_stay_out_and_a_quiet_run_is_an_empty_file(server_factory: Any,
                                                           workspace: Path) -> None:
    write_job(workspace, "leaky", "interpreter: bash\n"
              "argspec: {args: [{name: key, type: string, format: secret}]}\n",
              {"100_main.sh": "echo \"key=$key\"\necho \"$key\" >&2\n"})
    write_job(workspace, "quiet", "interpreter: bash\n", {"100_main.sh": "true\n"})
    server = server_factory("--dev")
    secret = "s3cr3t-value-for-the-log"
    leaky = finished_run(server, {"job_id": "leaky", "args": {"key": secret}})
    text = httpx.get(f"{server.url}/runs/{leaky}/log.txt", headers=DEV, timeout=30).text
    assert secret not in text and sorted(text.splitlines()) == ["[secret]", "key=[secret]"]
    quiet = finished_run(server, {"job_id": "quiet", "args": {}})
    empty = httpx.get(f"{server.url}/runs/{quiet}/log.txt", headers=DEV, timeout=30)
    assert empty.status_code == 200 and empty.content == b""


def test_an_unknown_run_is_a_404_problem(dev_server: Any) -> None:
    missing = httpx.get(f"{dev_server.url}/runs/run_nope/log.txt", headers=DEV, timeout=30)
    assert missing.status_code == 404 and missing.json()["code"] == "run.not.found"


def test_a_live_run_gives_what_it_printed_so_far_and_ends(server_factory: Any,
                                                          workspace: Path) -> None:
    write_job(workspace, "slow", "interpreter: bash\n",
              {"100_main.sh": "echo started\nexec sleep 60\n"})
    server = server_factory("--dev")
    created = httpx.post(f"{server.url}/runs", json={"job_id": "slow", "args": {}},
                         headers=DEV, timeout=30)
    run_id = created.json()["id"]
    with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", headers=DEV,
                      timeout=60) as response:
        for line in response.iter_lines():
            if '"message":"started"' in line:
                break
    # A download, not a tail: it answers with the output so far, then the body ends.
    partial = httpx.get(f"{server.url}/runs/{run_id}/log.txt", headers=DEV, timeout=30)
    assert partial.status_code == 200 and partial.text == "started\n"
    cancel = httpx.post(f"{server.url}/runs/{run_id}:cancel", headers=DEV, timeout=30)
    assert cancel.status_code in (200, 202)
