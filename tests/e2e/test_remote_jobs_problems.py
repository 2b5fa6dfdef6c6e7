"""``flwd :jobs`` on a workspace whose configs and aliases are broken: through a real
``flwd :serve`` (remote mode) it prints what it prints locally — the ``--json`` document
and the stderr lines — and the stderr lines classify each problem as the JSON does.

The one field that differs: ``jobs[].path``. Locally it is relative to the workspace
(``scripts/demo``); the server's ``GET /jobs`` gives it relative to its scripts root
(``demo``), and the CLI cannot know what that directory is called on the server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Server, run_cli, scrape, write_job

DEV = {"Authorization": "Bearer dev-token"}

ALIASES = """\
aliases:
  - {from: demo, to: hello-demo, description: Shortcut for demo job}
  - {from: demo, to: ":plan"}
  - {from: nowhere/job, to: lost}
  - {from: demo, to: twice}
  - {from: examples/fail, to: twice}
bogus: 1
"""


def break_workspace(workspace: Path, repos: Path) -> None:
    """Every kind of problem ``:jobs`` reports: a config that does not parse, a job
    config with an unknown key (a warning), invalid and colliding aliases, an unknown
    key in flwd.yaml (a warning), and a source whose own flwd.yaml declares an alias."""
    (workspace / "scripts" / "flwd.yaml").write_text(ALIASES)
    write_job(workspace, "broken", "job: [\n", {"100_x.sh": "true\n"})
    write_job(workspace, "typo", "interpreter: bash\ntimeuot: 5\n", {"100_x.sh": "true\n"})
    extra = repos / "extra"
    write_job(extra, "hello", "job: {id: hello}\ninterpreter: bash\n", {"100_x.sh": "true\n"})
    (extra / "scripts" / "flwd.yaml").write_text("aliases:\n  - {from: hello, to: greet}\n")


def without_paths(document: dict[str, Any]) -> dict[str, Any]:
    return {**document, "jobs": [{k: v for k, v in job.items() if k != "path"}
                                 for job in document["jobs"]]}


def requests_to(server: Server, route: str) -> float:
    return scrape(server.url).get(("flwd_http_requests_total", frozenset(
        {"method": "GET", "route": route, "code": "200"}.items())), 0.0)


def test_remote_jobs_reports_what_local_jobs_reports(server_factory: Any, workspace: Path,
                                                     data_dir: Path, tmp_path: Path) -> None:
    repos = tmp_path / "repos"
    break_workspace(workspace, repos)
    added = run_cli([":sources", "add", "--type", "local", "--ref", str(repos / "extra" / "scripts"),
                     "--name", "extra", "--allow-path", str(repos)], cwd=workspace,
                    data_dir=data_dir)
    assert added.returncode == 0, added.stderr
    local_json = run_cli([":jobs", "--json"], cwd=workspace, data_dir=data_dir)
    local_human = run_cli([":jobs"], cwd=workspace, data_dir=data_dir)
    assert (local_json.returncode, local_human.returncode) == (0, 0), local_human.stderr

    server = server_factory("--dev", "--allow-path", str(repos))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"FLWD_SERVER": server.url, "FLWD_TOKEN": "dev-token"}
    far_json = run_cli([":jobs", "--json"], cwd=elsewhere, data_dir=data_dir, **env)
    far_human = run_cli([":jobs"], cwd=elsewhere, data_dir=data_dir, **env)
    assert (far_json.returncode, far_human.returncode) == (0, 0), far_human.stderr

    local, far = json.loads(local_json.stdout), json.loads(far_json.stdout)
    assert without_paths(far) == without_paths(local)
    assert list(far) == list(local)  # the same members, in the same order
    assert [job["path"] for job in local["jobs"] if job["id"] == "demo"] == ["scripts/demo"]
    assert [job["path"] for job in far["jobs"] if job["id"] == "demo"] == ["demo"]
    # Every kind is there (so the comparison above compares something).
    assert {name for name in local["alias_invalid"]} == {":plan", "lost"}
    assert set(local["alias_collisions"]) == {"twice"}
    assert {"name": "greet", "target_path": "extra/hello", "target_id": "extra/hello",
            "source": "extra"} in local["aliases"]
    assert {error["code"] for error in local["errors"]} == {
        "E_CONFIG", "alias.reserved", "alias.target.invalid"}
    assert {warning["path"] for warning in local["warnings"]} == {
        "scripts/flwd.yaml", "scripts/typo/config.d/config.yaml"}

    assert far_human.stdout == local_human.stdout
    assert far_human.stderr == local_human.stderr
    lines = local_human.stderr.splitlines()
    # Each line at the level of the JSON member that lists the problem.
    for error in local["errors"]:
        assert f"flwd: error: {error['path']}: {error['error']} [{error['code']}]" in lines
    for warning in local["warnings"]:
        assert any(line.startswith(f"flwd: warning: {warning['path']}: {warning['warning']}")
                   for line in lines)
    assert ("flwd: error: alias 'twice' is declared for several jobs (demo, examples.fail) "
            "[alias.collision]") in lines
    assert len(lines) == len(local["errors"]) + len(local["warnings"]) + 1
    assert not [line for line in lines if "warning: alias" in line]


def test_the_extra_request_is_made_only_when_there_is_something(
        server_factory: Any, workspace: Path, data_dir: Path, tmp_path: Path) -> None:
    server = server_factory("--dev")
    env = {"FLWD_SERVER": server.url, "FLWD_TOKEN": "dev-token"}
    clean = run_cli([":jobs", "--json"], cwd=tmp_path, data_dir=data_dir, **env)
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["warnings"] == []
    assert requests_to(server, "/discovery") == 0
    server.stop()

    # A warning alone (nothing a client would count as an error) is worth asking for.
    write_job(workspace, "typo", "interpreter: bash\ntimeuot: 5\n", {"100_x.sh": "true\n"})
    server = server_factory("--dev")
    env["FLWD_SERVER"] = server.url
    listed = httpx.get(f"{server.url}/jobs", headers=DEV, timeout=30)
    assert (listed.headers["X-Flwd-Discovery-Errors"],
            listed.headers["X-Flwd-Discovery-Warnings"]) == ("0", "1")
    warned = run_cli([":jobs"], cwd=tmp_path, data_dir=data_dir, **env)
    assert warned.stderr.startswith("flwd: warning: scripts/typo/config.d/config.yaml: ")
    assert requests_to(server, "/discovery") == 1


def test_discovery_counts_and_names_aliases_for_who_sees_them(
        server_factory: Any, workspace: Path, data_dir: Path, tmp_path: Path) -> None:
    (workspace / "scripts" / "flwd.yaml").write_text(ALIASES)
    created = run_cli([":tokens", "create", "--name", "reader", "--scope", "jobs:read"],
                      cwd=workspace, data_dir=data_dir)
    assert created.returncode == 0, created.stderr
    reader = {"Authorization": f"Bearer {created.stdout.strip()}"}
    admin = run_cli([":tokens", "create", "--name", "admin", "--scope", "*"],
                    cwd=workspace, data_dir=data_dir)
    assert admin.returncode == 0, admin.stderr
    full = {"Authorization": f"Bearer {admin.stdout.strip()}"}
    server = server_factory()  # not --dev: the tokens' scopes apply

    listed = httpx.get(f"{server.url}/jobs", headers=full, timeout=30)
    # 2 invalid aliases + 1 collision; the unknown key 'bogus' is a warning, not an error.
    assert (listed.headers["X-Flwd-Discovery-Errors"], listed.headers["X-Flowd-Discovery-Errors"],
            listed.headers["X-Flwd-Discovery-Warnings"]) == ("3", "3", "1")
    seen = httpx.get(f"{server.url}/discovery", headers=full, timeout=30).json()
    assert set(seen["alias_invalid"]) == {":plan", "lost"}
    assert set(seen["alias_collisions"]) == {"twice"}
    hidden = httpx.get(f"{server.url}/discovery", headers=reader, timeout=30).json()
    assert set(hidden) == {"errors", "warnings"}
    assert hidden["errors"] == seen["errors"] and hidden["warnings"] == seen["warnings"]
