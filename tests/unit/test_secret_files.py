"""Where secret files go ($XDG_RUNTIME_DIR only when it is ours and 0700), their modes, removal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flwd.execute import (
    remove_secret_files,
    runs_with_runtime_secrets,
    secrets_dir,
    write_secret_files,
)
from flwd.execute._secrets import runtime_root


def private_dir(path: Path) -> Path:
    path.mkdir()
    path.chmod(0o700)
    return path


def test_the_runtime_dir_is_used_only_when_it_is_a_private_directory(tmp_path: Path) -> None:
    runtime = private_dir(tmp_path / "runtime")
    assert runtime_root({"XDG_RUNTIME_DIR": str(runtime)}) == runtime / "flwd"
    assert runtime_root({}) is None
    assert runtime_root({"XDG_RUNTIME_DIR": ""}) is None
    assert runtime_root({"XDG_RUNTIME_DIR": "relative/dir"}) is None
    assert runtime_root({"XDG_RUNTIME_DIR": str(tmp_path / "missing")}) is None
    (tmp_path / "file").write_text("")
    assert runtime_root({"XDG_RUNTIME_DIR": str(tmp_path / "file")}) is None
    runtime.chmod(0o755)  # others could list it
    assert runtime_root({"XDG_RUNTIME_DIR": str(runtime)}) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory away")
def test_a_runtime_dir_of_another_user_is_not_used(tmp_path: Path) -> None:
    runtime = private_dir(tmp_path / "runtime")
    os.chown(runtime, 65534, 65534)
    assert runtime_root({"XDG_RUNTIME_DIR": str(runtime)}) is None


def test_files_are_0600_in_0700_folders_and_removed_from_both_places(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = private_dir(tmp_path / "runtime")
    runs = tmp_path / "data" / "runs"
    (runs / "run-1").mkdir(parents=True)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    folder = secrets_dir(runs, "run-1")
    assert folder == runtime / "flwd" / "run-1" / "secrets"
    paths = write_secret_files(folder, {"api_key": "k-1", "pem": "a\nb\n"})
    assert paths == {"api_key": str(folder / "api_key"), "pem": str(folder / "pem")}
    assert Path(paths["pem"]).read_text() == "a\nb\n"
    for level in (runtime / "flwd", runtime / "flwd" / "run-1", folder):
        assert level.stat().st_mode & 0o777 == 0o700
    assert all(Path(path).stat().st_mode & 0o777 == 0o600 for path in paths.values())
    assert runs_with_runtime_secrets() == ["run-1"]
    # A leftover of the data-dir place (written while no runtime dir was set) too.
    write_secret_files(runs / "run-1" / "secrets", {"api_key": "k-1"})
    remove_secret_files(runs, ["run-1"])
    assert not (runtime / "flwd" / "run-1").exists()
    assert not (runs / "run-1" / "secrets").exists() and (runs / "run-1").is_dir()
    assert runs_with_runtime_secrets() == []
