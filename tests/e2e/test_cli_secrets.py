"""Secret arguments on the CLI (issue 12): short secrets are warned about and still masked."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli


def test_a_short_secret_is_warned_about_and_still_masked(workspace: Path, data_dir: Path) -> None:
    short = run_cli(["demo", "--name", "alice", "--secret_token", "i"], cwd=workspace,
                    data_dir=data_dir)
    assert short.returncode == 0, short.stderr
    warnings = [line for line in short.stderr.splitlines() if "warning" in line]
    assert warnings == ["flwd: warning: --secret_token is shorter than 4 characters; every "
                        "occurrence of it in the output is still masked as [secret]"]
    assert "al[secret]ce" in short.stdout
    assert "alice" not in short.stdout
    fine = run_cli(["demo", "--name", "alice", "--secret_token", "abcd"], cwd=workspace,
                   data_dir=data_dir)
    assert fine.returncode == 0 and "warning" not in fine.stderr
