"""Sources through a real ``flwd :serve`` with real git repositories made in the test.

Register by branch, tag and commit; the pinned commit is in provenance; a new
commit shows only after a refresh; a run keeps executing the commit it was
planned against; a removed source's jobs are gone; bad input is a clear 4xx
and leaves nothing behind; a restart restores every source.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server

AUTH = {"Authorization": "Bearer dev-token"}
GIT_ID = ["-c", "user.email=t@example.org", "-c", "user.name=t"]
JOB_CONFIG = ("job:\n  name: Git job\nargspec:\n  args:\n"
              "    - {name: name, type: string, required: true}\n")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *GIT_ID, *args], cwd=repo, check=True, capture_output=True,
                          text=True).stdout.strip()


def commit_script(repo: Path, body: str, message: str) -> str:
    """Write the job's script (and config), commit, and return the commit id."""
    job = repo / "scripts" / "gitjob"
    (job / "config.d").mkdir(parents=True, exist_ok=True)
    (job / "config.d" / "config.yaml").write_text(JOB_CONFIG)
    script = job / "100_run.sh"
    script.write_text(body)
    script.chmod(0o755)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "allowed" / "repo"
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    commit_script(path, 'echo "v1 for $1"\n', "one")
    git(path, "tag", "v1")
    return path


@pytest.fixture
def server(server_factory: Any, tmp_path: Path) -> Server:
    return server_factory("--dev", "--allow-path", str(tmp_path / "allowed"))


def call(server: Server, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, server.url + path, headers=AUTH, json=body, timeout=60)


def add_git(server: Server, repo: Path, ref: str, name: str = "tools") -> httpx.Response:
    return call(server, "POST", "/sources",
                {"type": "git", "name": name, "url": f"file://{repo}", "ref": ref})


def run_to_end(server: Server, body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    created = call(server, "POST", "/runs", body)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    # The SSE stream ends after run.finish: reading it to the end is the wait.
    with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", headers=AUTH,
                      timeout=60) as stream:
        events = [json.loads(line[5:]) for line in stream.iter_lines()
                  if line.startswith("data:")]
    lines = [e["data"]["message"] for e in events if e["type"] == "step.log"]
    return call(server, "GET", f"/runs/{run_id}").json(), lines


@pytest.mark.parametrize("ref_kind", ["branch", "tag", "commit"])
def test_register_by_branch_tag_and_commit(server: Server, repo: Path, ref_kind: str) -> None:
    head = git(repo, "rev-parse", "HEAD")
    ref = {"branch": "main", "tag": "v1", "commit": head[:10]}[ref_kind]
    added = add_git(server, repo, ref)
    assert added.status_code == 201, added.text
    assert added.headers["Location"] == "/sources/tools"
    source = added.json()
    assert (source["status"], source["resolved_commit"], source["jobs"]) == ("ready", head, 1)
    jobs = {job["id"]: job for job in call(server, "GET", "/jobs").json()}
    assert jobs["tools/gitjob"]["source"] == {"name": "tools", "type": "git"}
    plan = call(server, "POST", "/plans", {"job_id": "gitjob", "args": {"name": "A"},
                                           "source": {"name": "tools"}}).json()
    provenance = plan["provenance"]["source"]
    assert provenance["resolved_commit"] == head
    assert provenance["ref"] == ref
    assert provenance["checkout_path"].endswith(f"/sources/tools/trees/{head}")
    assert provenance["job_path"] == "scripts/gitjob"  # relative to the checkout
    assert plan["steps"][0]["script"] == "scripts/gitjob/100_run.sh"
    run, lines = run_to_end(server, {"job_id": "tools/gitjob", "args": {"name": "Al"}})
    assert run["status"] == "completed"
    assert run["provenance"]["source"]["resolved_commit"] == head
    assert lines == ["v1 for Al"] or lines[0].startswith("v1")


def test_a_new_commit_appears_only_after_refresh(server: Server, repo: Path) -> None:
    first = add_git(server, repo, "main").json()["resolved_commit"]
    second = commit_script(repo, 'echo "v2 for $1"\n', "two")
    plan = call(server, "POST", "/plans", {"job_id": "tools/gitjob", "args": {"name": "x"}})
    assert plan.json()["provenance"]["source"]["resolved_commit"] == first
    refreshed = call(server, "POST", "/sources/tools:refresh")
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["resolved_commit"] == second
    # POSTing the same source again is a refresh too (200, not 201).
    again = add_git(server, repo, "main")
    assert (again.status_code, again.json()["resolved_commit"]) == (200, second)
    plan = call(server, "POST", "/plans", {"job_id": "tools/gitjob", "args": {"name": "x"}})
    assert plan.json()["provenance"]["source"]["resolved_commit"] == second


def test_a_git_source_without_ref_follows_the_default_branch(server: Server,
                                                            repo: Path) -> None:
    # As the reference's (§12.2): no ref (or an empty one) is HEAD.
    git(repo, "checkout", "-q", "-b", "elsewhere")
    commit_script(repo, 'echo "not the default branch"\n', "side")
    git(repo, "checkout", "-q", "main")
    first = git(repo, "rev-parse", "main")
    for name, body in (("nohead", {}), ("emptyhead", {"ref": ""})):
        added = call(server, "POST", "/sources",
                     {"type": "git", "name": name, "url": f"file://{repo}", **body})
        assert added.status_code == 201, added.text
        source = added.json()
        assert (source["ref"], source["resolved_commit"], source["status"]) == (
            "HEAD", first, "ready")
        assert source["provenance"]["ref"] == "HEAD"
    second = commit_script(repo, 'echo "v2 for $name"\n', "two")
    refreshed = call(server, "POST", "/sources/nohead:refresh")
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["resolved_commit"] == second
    run, lines = run_to_end(server, {"job_id": "nohead/gitjob", "args": {"name": "Hd"}})
    assert run["status"] == "completed" and lines == ["v2 for Hd"]


def test_a_run_keeps_the_commit_it_was_planned_against(server: Server, repo: Path,
                                                       tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    commit_script(repo, f'echo "old started"\nwhile [ ! -e {gate} ]; do :; done\n'
                        'sleep 0.2; echo "old finished"\n', "slow")
    first = add_git(server, repo, "main").json()["resolved_commit"]
    created = call(server, "POST", "/runs", {"job_id": "tools/gitjob", "args": {"name": "x"}})
    run_id = created.json()["id"]
    with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", headers=AUTH,
                      timeout=60) as stream:
        lines = stream.iter_lines()
        for line in lines:  # wait until the old commit's script is running
            if line.startswith("data:") and "old started" in line:
                break
        commit_script(repo, 'echo "new"\n', "new")
        assert call(server, "POST", "/sources/tools:refresh").json()["resolved_commit"] != first
        gate.touch()
        rest = [json.loads(line[5:]) for line in lines if line.startswith("data:")]
    assert "old finished" in [e["data"].get("message") for e in rest]
    assert rest[-1]["data"]["status"] == "completed"
    assert call(server, "GET", f"/runs/{run_id}").json()["provenance"]["source"][
        "resolved_commit"] == first


def test_local_source_from_the_readme(server: Server, tmp_path: Path) -> None:
    extra = tmp_path / "allowed" / "extra-scripts" / "hello"
    (extra / "config.d").mkdir(parents=True)
    (extra / "config.d" / "config.yaml").write_text(
        "argspec:\n  args:\n    - {name: name, type: string}\n")
    (extra / "100_hello.sh").write_text('echo "hello $(cat "$FLWD_ARGS_FILE" 2>/dev/null)"\n')
    (tmp_path / "allowed" / "extra-scripts" / "flwd.yaml").write_text(
        "aliases:\n  - {from: hello, to: extras-hello, description: From a source}\n")
    added = call(server, "POST", "/sources", {"type": "local", "name": "extras",
                                              "ref": str(extra.parent)})
    assert added.status_code == 201, added.text
    assert added.json()["aliases"] == [{"from": "hello", "to": "extras-hello",
                                        "description": "From a source"}]
    run, _ = run_to_end(server, {"job_id": "hello", "args": {"name": "Alice"},
                                 "source": {"name": "extras"}})
    assert run["status"] == "completed"
    assert run["provenance"]["source"]["name"] == "extras"
    assert run["provenance"]["source"]["type"] == "local"
    # The source's alias is tagged with it and runs its job.
    listed = {job["id"]: job for job in call(server, "GET", "/jobs").json()}
    assert listed["extras-hello"]["alias_of"] == "extras/hello"
    run, _ = run_to_end(server, {"job_id": "extras-hello", "args": {}})
    assert run["job_id"] == "extras/hello"


def test_removed_source_jobs_disappear(server: Server, repo: Path, data_dir: Path) -> None:
    add_git(server, repo, "main")
    assert (data_dir / "sources" / "tools" / "repo.git").is_dir()
    assert call(server, "DELETE", "/sources/tools").status_code == 204
    assert "tools/gitjob" not in [job["id"] for job in call(server, "GET", "/jobs").json()]
    assert call(server, "GET", "/sources").json() == []
    assert not (data_dir / "sources" / "tools").exists()
    gone = call(server, "POST", "/plans", {"job_id": "tools/gitjob", "args": {"name": "x"}})
    assert (gone.status_code, gone.json()["code"]) == (404, "job.not.found")
    again = call(server, "DELETE", "/sources/tools")
    assert (again.status_code, again.json()["code"]) == (404, "source.not.found")


def test_bad_input_is_a_clear_problem_and_leaves_nothing(server: Server, repo: Path,
                                                         tmp_path: Path, data_dir: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "allowed" / "sneaky").symlink_to(outside)
    add_git(server, repo, "main", name="taken")
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({"type": "svn", "ref": "x"}, 400, "invalid-request-body", "type"),
        ({"type": "git", "ref": "main"}, 400, "invalid-request-body", "git.url"),
        ({"type": "git", "url": f"file://{repo}", "ref": "a..b"}, 422, "source.invalid",
         "not a valid git ref"),
        ({"type": "local", "ref": "../../../etc"}, 400, "source.not.allowed", "allow-list"),
        ({"type": "local", "ref": str(tmp_path / "allowed" / "sneaky")}, 400,
         "source.not.allowed", "resolves to"),
        ({"type": "git", "name": "ghost", "url": f"file://{tmp_path}/allowed/none", "ref": "main"},
         422, "source.invalid", "not an existing directory"),
        ({"type": "git", "name": "norepo", "url": f"file://{outside.parent}/allowed",
          "ref": "main"}, 422, "source.checkout.failed", "git clone"),
        ({"type": "git", "name": "badref", "url": f"file://{repo}", "ref": "nope"}, 422,
         "source.checkout.failed", "not a branch, tag or commit"),
        ({"type": "local", "name": "taken", "ref": str(tmp_path / "allowed")}, 409,
         "source.exists", "already exists"),
        ({"type": "local", "name": "a/b", "ref": str(tmp_path / "allowed")}, 400,
         "invalid-request-body", "name"),
        ({"type": "local", "ref": "0" * 5000}, 400, "invalid-request-body", "ref"),
        ({"type": "local", "ref": "x" * 4000}, 422, "source.invalid", "cannot be used"),
        ({"type": "git", "name": "far", "url": "https://example.org/x.git", "ref": "main"},
         400, "source.not.allowed", "git host"),
    ]
    for body, status, code, words in cases:
        response = call(server, "POST", "/sources", body)
        assert response.status_code == status, (body, response.text)
        problem = response.json()
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert problem["code"] == code, (body, problem)
        assert words in json.dumps(problem), (body, problem)
    assert [source["name"] for source in call(server, "GET", "/sources").json()] == ["taken"]
    assert sorted(p.name for p in (data_dir / "sources").iterdir()
                  if not p.name.startswith(".")) == ["taken"]
    for path in ("/sources/a%2Fb", "/sources/..%5Cx", "/sources/nope"):
        assert call(server, "GET", path).status_code == 404


def test_a_restart_restores_every_source(server_factory: Any, server: Server, repo: Path,
                                         tmp_path: Path) -> None:
    head = add_git(server, repo, "main").json()["resolved_commit"]
    commit_script(repo, 'echo "later"\n', "later")  # not pinned: no refresh happened
    server.stop()
    restarted = server_factory("--dev", "--allow-path", str(tmp_path / "allowed"))
    listed = call(restarted, "GET", "/sources").json()
    assert [(s["name"], s["resolved_commit"]) for s in listed] == [("tools", head)]
    run, _ = run_to_end(restarted, {"job_id": "tools/gitjob", "args": {"name": "R"}})
    assert (run["status"], run["provenance"]["source"]["resolved_commit"]) == ("completed", head)
