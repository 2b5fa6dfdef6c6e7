"""Secret files of a container step: bind-mounted from where they really are (real Podman)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import run_cli, write_job

from .conftest import IMAGE

PROBE = r"""#!/bin/sh
echo "secret_sha=$(sha256sum /run/secrets/api_key | cut -c1-64)"
echo "token_file=$ARG_API_KEY_FILE"
echo "run_dir=$(ls -A "$FLWD_RUN_DIR" | tr '\n' ' ')"
"""


@pytest.mark.parametrize("place", ["runtime-dir", "data-dir"])
def test_the_secret_mount_comes_from_the_runtime_dir_or_the_run_dir(
        place: str, workspace: Path, data_dir: Path, tmp_path: Path, podman_env: dict[str, str],
        policy_file: Path) -> None:
    runtime = tmp_path / "xdg-runtime"
    runtime.mkdir(mode=0o700)
    runtime.chmod(0o700)
    write_job(workspace, "probe", f"executor: container\ncontainer:\n  image: {IMAGE}\n"
              "argspec: {args: [{name: api_key, type: string, format: secret}]}\n",
              {"100_main.sh": PROBE})
    secret = "tok-mount-Secret-31c4"
    result = run_cli(["probe", "--api_key", secret], cwd=workspace, data_dir=data_dir,
                     FLWD_POLICY_FILE=str(policy_file), **podman_env,
                     XDG_RUNTIME_DIR=str(runtime) if place == "runtime-dir" else "")
    assert result.returncode == 0, result.stderr
    seen = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert seen["secret_sha"] == hashlib.sha256(secret.encode()).hexdigest()
    assert seen["token_file"] == "/run/secrets/api_key"
    if place == "runtime-dir":
        # Not in the run dir, which the container sees read-write.
        assert "secrets" not in seen["run_dir"].split()
    # Gone with the run, from both places.
    assert list((runtime / "flwd").glob("*/secrets/*")) == []
    assert list((data_dir / "runs").glob("*/secrets/*")) == []
