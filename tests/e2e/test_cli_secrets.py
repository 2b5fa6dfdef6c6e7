"""Secret arguments on the CLI (issue 12): short secrets are warned about and still masked."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli


def test_a_short_secret_is_warned_about_and_still_masked(workspace: Path, data_dir: Path) -> None:
    (workspace / "short").write_text("i\n")  # from a file: no warning about argv
    short = run_cli(["demo", "--name", "alice", "--secret_token-file", "short"], cwd=workspace,
                    data_dir=data_dir)
    assert short.returncode == 0, short.stderr
    warnings = [line for line in short.stderr.splitlines() if "warning" in line]
    assert warnings == ["flwd: warning: --secret_token is shorter than 4 characters; every "
                        "occurrence of it in the output is still masked as [secret]"]
    assert "al[secret]ce" in short.stdout
    assert "alice" not in short.stdout
    (workspace / "fine").write_text("abcd\n")
    fine = run_cli(["demo", "--name", "alice", "--secret_token-file", "fine"], cwd=workspace,
                   data_dir=data_dir)
    assert fine.returncode == 0 and "warning" not in fine.stderr
