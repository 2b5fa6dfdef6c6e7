"""``scripts/smoke-sources.sh`` (the README's sanity check) against a real ``flwd :serve``,
for a local folder and a git repository, and failing loudly on a bad step."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, git, make_git_repo

SCRIPT = REPO / "scripts" / "smoke-sources.sh"

pytestmark = pytest.mark.skipif(not (shutil.which("jq") and shutil.which("curl")),
                                reason="smoke-sources.sh needs jq and curl")


def smoke(url: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("FLWD_", "SOURCE_", "GIT_", "JOB_"))}
    return subprocess.run([str(SCRIPT)], env={**clean, "FLWD_URL": url, **env},
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    path = tmp_path / "allowed"
    path.mkdir()
    return path


@pytest.fixture
def server(server_factory: Any, allowed: Path) -> Any:
    return server_factory("--dev", "--allow-path", str(allowed))


def sources_of(server: Any) -> list[Any]:
    response = httpx.get(server.url + "/sources", headers={"Authorization": "Bearer dev-token"},
                         timeout=30)
    response.raise_for_status()
    listed: list[Any] = response.json()
    return listed


@pytest.fixture
def extra(allowed: Path) -> Path:
    job = allowed / "extra-scripts" / "hello"
    (job / "config.d").mkdir(parents=True)
    (job / "config.d" / "config.yaml").write_text(
        "job: {id: hello}\ninterpreter: bash\n"
        "argspec:\n  args:\n    - {name: name, type: string, required: true}\n")
    (job / "100_run.sh").write_text('echo "hello $ARG_NAME from the smoke source"\n')
    return job.parent


def test_the_defaults_pass_against_a_dev_server_on_the_bundled_scripts(dev_server: Any) -> None:
    """`scripts/smoke-sources.sh` as the README runs it: no settings but the URL (the port is
    the test's), against `flwd :serve --dev` on the bundled scripts/."""
    done = smoke(dev_server.url)
    assert done.returncode == 0, done.stderr
    assert "vars: Hi, world!" in done.stdout  # the run's output, among the events
    assert '"type":"run.finish"' in done.stdout
    assert "smoke-sources: OK (local source smoke-local, job vars" in done.stdout
    assert sources_of(dev_server) == []  # removed at the end


def test_local_source(server: Any, extra: Path) -> None:
    done = smoke(server.url, SOURCE_REF=str(extra), JOB_ID="hello", JOB_ARGS='{"name": "Alice"}')
    assert done.returncode == 0, done.stderr
    assert f'"resolved_path": "{extra}"' in done.stdout  # the provenance
    assert "hello Alice from the smoke source" in done.stdout  # an NDJSON event
    assert '"type":"run.finish"' in done.stdout
    assert "smoke-sources: OK (local source smoke-local, job hello" in done.stdout
    assert sources_of(server) == []  # removed at the end


def test_git_source(server: Any, allowed: Path) -> None:
    repo = make_git_repo(allowed / "tools", {
        "scripts/gitjob/config.d/config.yaml": "job: {id: gitjob}\ninterpreter: bash\n",
        "scripts/gitjob/100_run.sh": "echo gitjob says hi\n"})
    commit = git(repo, "rev-parse", "HEAD")
    done = smoke(server.url, SOURCE_TYPE="git", SOURCE_URL=f"file://{repo}", GIT_REF="main",
                 JOB_ID="gitjob")
    assert done.returncode == 0, done.stderr
    assert f'"resolved_commit": "{commit}"' in done.stdout
    assert "gitjob says hi" in done.stdout
    assert "smoke-sources: OK (git source smoke-git, job gitjob" in done.stdout
    assert sources_of(server) == []


def test_a_failed_step_exits_non_zero_naming_it(server: Any, extra: Path) -> None:
    done = smoke(server.url, SOURCE_REF=str(extra), JOB_ID="nope")
    assert done.returncode != 0
    assert "FAILED at step 'plan nope'" in done.stderr
    assert "unknown job 'smoke-local/nope'" in done.stderr
    assert sources_of(server) == []  # nothing left behind

    outside = smoke(server.url, SOURCE_REF="/etc")
    assert outside.returncode != 0
    assert "FAILED at step 'register source'" in outside.stderr
    assert "outside the allow-list" in outside.stderr



def test_a_run_that_fails_fails_the_smoke(server: Any, allowed: Path) -> None:
    job = allowed / "broken" / "boom"
    (job / "config.d").mkdir(parents=True)
    (job / "config.d" / "config.yaml").write_text("job: {id: boom}\ninterpreter: bash\n")
    (job / "100_run.sh").write_text("echo about to fail\nexit 3\n")
    done = smoke(server.url, SOURCE_REF=str(job.parent), JOB_ID="boom")
    assert done.returncode != 0
    assert "FAILED at step 'check run" in done.stderr and "the run ended failed" in done.stderr
    assert "about to fail" in done.stdout  # the events were still printed
    assert sources_of(server) == []


def test_an_unreachable_server_names_the_step(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = smoke(f"http://127.0.0.1:{port}")
    assert done.returncode != 0
    assert "FAILED at step 'reach server'" in done.stderr
