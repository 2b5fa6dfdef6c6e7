"""Statuses and codes as the reference answers them (issue 14 item 10), on a real server.

flwd keeps its own problem shape (titles, details, ``type`` URIs); the status and the
``code`` are the reference's. The OCI cases that need a container runtime
(``E_ADDON_MANIFEST``, ``E_OCI`` on add, ``E_OCI_RUN_UNSUPPORTED``'s extensions) are in
tests/containers/test_oci_addons.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import run_cli, write_job

DEV = {"Authorization": "Bearer dev-token"}
MIXED = """\
job: {summary: A step that picks its own executor}
interpreter: bash
composition: steps
steps:
  - {id: first, script: first.sh}
  - {id: second, script: second.sh, executor: container}
"""


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    document: dict[str, Any] = response.json()
    assert document["code"] == code and document["status"] == status
    return document


def _runs(url: str) -> int:
    return int(httpx.get(f"{url}/runs", headers=DEV).headers["X-Total-Count"])


@pytest.mark.parametrize("path", ["/plans", "/runs"])
def test_an_unknown_requested_profile_is_422_e_policy(dev_server, path: str) -> None:
    response = httpx.post(f"{dev_server.url}{path}", headers=DEV, json={
        "job_id": "demo", "args": {"name": "x"}, "requested_security_profile": "invalid"})
    refused = problem(response, 422, "E_POLICY")
    assert refused["title"] == "invalid security profile"
    assert "requested_security_profile" in refused["detail"]
    assert _runs(dev_server.url) == 0
    accepted = httpx.post(f"{dev_server.url}/plans", headers=DEV, json={
        "job_id": "demo", "args": {"name": "x"}, "requested_security_profile": "permissive"})
    assert accepted.status_code == 200 and accepted.json()["security_profile"] == "permissive"


def test_a_step_executor_keeps_the_dag_listed_and_refuses_it(
        workspace: Path, data_dir: Path, server_factory) -> None:
    write_job(workspace, "mixed", MIXED, {"first.sh": "echo one\n", "second.sh": "echo two\n"})
    server = server_factory("--dev")
    listed = httpx.get(f"{server.url}/jobs", headers=DEV)
    assert "mixed" in [job["id"] for job in listed.json()]
    assert listed.headers["X-Flwd-Discovery-Errors"] == "0"
    warnings = httpx.get(f"{server.url}/discovery", headers=DEV).json()["warnings"]
    assert any("steps[1].executor" in w["warning"] for w in warnings)
    for path in ("/plans", "/runs"):
        refused = problem(httpx.post(f"{server.url}{path}", headers=DEV,
                                     json={"job_id": "mixed"}), 422, "E_POLICY")
        assert refused["title"] == "mixed executors not allowed"
        assert refused["errors"] == [{"arg": "steps[1].executor", "message": (
            "a step cannot choose its executor; set executor on the job")}]
    assert _runs(server.url) == 0
    # The CLI says the same, in one line, exit 2; :jobs lists the job.
    ran = run_cli(["mixed"], cwd=workspace, data_dir=data_dir)
    assert ran.returncode == 2, ran.stderr
    assert "steps[1]: a step cannot choose its executor" in ran.stderr
    assert "Traceback" not in ran.stderr
    jobs = json.loads(run_cli([":jobs", "--json"], cwd=workspace, data_dir=data_dir).stdout)
    assert "mixed" in [job["id"] for job in jobs["jobs"]]


def test_source_refusals_are_400(dev_server) -> None:
    outside = problem(httpx.post(f"{dev_server.url}/sources", headers=DEV, json={
        "type": "local", "ref": "../../../etc"}), 400, "source.not.allowed")
    assert "allow-list" in outside["detail"]
    far = problem(httpx.post(f"{dev_server.url}/sources", headers=DEV, json={
        "type": "git", "name": "far", "url": "https://example.org/x.git", "ref": "main"}),
        400, "source.not.allowed")
    assert "git host" in far["detail"]
    for body in ({"type": "oci", "ref": "ghcr.io/example/addon:1"},
                 {"type": "oci", "ref": "ghcr.io/example/addon:1", "trusted": False}):
        untrusted = problem(httpx.post(f"{dev_server.url}/sources", headers=DEV, json=body),
                            400, "source.trust.required")
        assert "trusted" in untrusted["detail"]
    assert httpx.get(f"{dev_server.url}/sources", headers=DEV).json() == []


@pytest.mark.parametrize("where", ["query", "header"])
def test_a_bad_last_event_id_is_titled_as_the_reference_titles_it(dev_server,
                                                                  where: str) -> None:
    run = httpx.post(f"{dev_server.url}/runs", headers=DEV,
                     json={"job_id": "demo", "args": {"name": "cursor"}}).json()
    for path in (f"/runs/{run['id']}/events", "/events"):
        if where == "query":
            response = httpx.get(f"{dev_server.url}{path}", params={"last_event_id": "abc"},
                                 headers=DEV)
        else:
            response = httpx.get(f"{dev_server.url}{path}",
                                 headers={**DEV, "Last-Event-ID": "abc"})
        refused = problem(response, 400, "invalid-cursor")
        assert refused["title"] == "invalid Last-Event-ID"


def test_a_bad_alias_is_an_error_too_and_both_count_headers_are_sent(
        workspace: Path, data_dir: Path, server_factory) -> None:
    aliases = workspace / "scripts" / "flwd.yaml"
    aliases.write_text(aliases.read_text() + "  - {from: nowhere/job, to: lost}\n")
    server = server_factory("--dev")
    listed = httpx.get(f"{server.url}/jobs", headers=DEV)
    assert listed.headers["X-Flwd-Discovery-Errors"] == "1"
    assert listed.headers["X-Flowd-Discovery-Errors"] == "1"
    errors = httpx.get(f"{server.url}/discovery", headers=DEV).json()["errors"]
    assert [(e["path"], e["code"]) for e in errors] == [
        ("scripts/flwd.yaml", "alias.target.invalid")]
    assert "'lost' targets 'nowhere/job'" in errors[0]["error"]
    report = json.loads(run_cli([":jobs", "--json"], cwd=workspace, data_dir=data_dir).stdout)
    assert report["alias_invalid"]["lost"]["code"] == "alias.target.invalid"
    assert [e["code"] for e in report["errors"]] == ["alias.target.invalid"]
    used = problem(httpx.post(f"{server.url}/plans", headers=DEV, json={"job_id": "lost"}),
                   400, "alias.target.invalid")
    assert used["title"] == "alias invalid"
