"""Settings: the workspace (upward search for scripts/), the data dir, FLWD_GRACE."""

from __future__ import annotations

from pathlib import Path

import pytest

from flwd.errors import UsageError
from flwd.settings import (
    DEFAULT_GRACE,
    Settings,
    find_scripts_root,
    resolve_data_dir,
    resolve_settings,
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "scripts").mkdir(parents=True)
    return root


# -- data dir ---------------------------------------------------------------------------------


def test_data_dir_precedence(tmp_path, home):
    env = {"FLWD_DATA_DIR": str(tmp_path / "flwd"), "DATA_DIR": str(tmp_path / "data"),
           "XDG_DATA_HOME": str(tmp_path / "xdg")}
    assert resolve_data_dir(str(tmp_path / "flag"), env) == tmp_path / "flag"
    assert resolve_data_dir(None, env) == tmp_path / "flwd"
    del env["FLWD_DATA_DIR"]
    assert resolve_data_dir(None, env) == tmp_path / "data"
    del env["DATA_DIR"]
    assert resolve_data_dir(None, env) == tmp_path / "xdg" / "flwd"
    del env["XDG_DATA_HOME"]
    assert resolve_data_dir(None, env) == home / ".local" / "share" / "flwd"


def test_empty_values_fall_through(tmp_path, home):
    env = {"FLWD_DATA_DIR": "", "DATA_DIR": "", "XDG_DATA_HOME": ""}
    assert resolve_data_dir("", env) == home / ".local" / "share" / "flwd"


def test_data_dir_expands_user_and_is_absolute(home):
    assert resolve_data_dir("~/d", {}) == home / "d"
    assert resolve_data_dir(None, {"DATA_DIR": "~/x"}) == home / "x"
    assert resolve_data_dir(None, {"XDG_DATA_HOME": "~/share"}) == home / "share" / "flwd"
    relative = resolve_data_dir("rel", {})
    assert relative.is_absolute()
    assert relative == Path.cwd() / "rel"


def test_data_dir_uses_the_given_env_not_the_process_env(tmp_path, monkeypatch, home):
    monkeypatch.setenv("FLWD_DATA_DIR", str(tmp_path / "from-process"))
    assert resolve_data_dir(None, {}) == home / ".local" / "share" / "flwd"


# -- scripts root ------------------------------------------------------------------------------


def test_scripts_found_in_cwd(workspace, home):
    settings = resolve_settings(env={}, cwd=workspace)
    assert settings == Settings(workspace=workspace, scripts_root=workspace / "scripts",
                                data_dir=home / ".local" / "share" / "flwd", grace=DEFAULT_GRACE)
    assert settings.db_path == home / ".local" / "share" / "flwd" / "flwd.db"
    assert settings.runs_dir == home / ".local" / "share" / "flwd" / "runs"


def test_scripts_found_in_a_parent(workspace, home):
    deep = workspace / "scripts" / "team" / "job" / "config.d"
    deep.mkdir(parents=True)
    settings = resolve_settings(env={}, cwd=deep)
    assert settings.scripts_root == workspace / "scripts"
    assert settings.workspace == workspace


def test_nearest_scripts_dir_wins(workspace, home):
    inner = workspace / "sub"
    (inner / "scripts").mkdir(parents=True)
    assert resolve_settings(env={}, cwd=inner).scripts_root == inner / "scripts"


def test_a_file_named_scripts_is_not_a_scripts_dir(tmp_path, workspace, home):
    inner = workspace / "sub"
    inner.mkdir()
    (inner / "scripts").write_text("not a dir")
    assert find_scripts_root(inner) == workspace / "scripts"


def test_missing_scripts_dir_is_a_usage_error(tmp_path, home):
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    if find_scripts_root(lonely) is not None:
        pytest.skip("a scripts/ directory exists above the temp dir")
    with pytest.raises(UsageError) as info:
        resolve_settings(env={}, cwd=lonely)
    assert str(lonely) in info.value.detail
    assert "--scripts" in (info.value.hint or "")
    assert info.value.problem.exit_status == 2


def test_missing_scripts_dir_is_allowed_when_not_required(tmp_path, home):
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    if find_scripts_root(lonely) is not None:
        pytest.skip("a scripts/ directory exists above the temp dir")
    settings = resolve_settings(env={}, cwd=lonely, require_scripts=False)
    assert settings.scripts_root == lonely / "scripts"
    assert settings.workspace == lonely


def test_explicit_scripts_flag_beats_env_and_search(tmp_path, workspace, home):
    other = tmp_path / "other" / "jobs"
    other.mkdir(parents=True)
    env_dir = tmp_path / "envdir"
    env_dir.mkdir()
    settings = resolve_settings(scripts=str(other), env={"FLWD_SCRIPTS": str(env_dir)},
                                cwd=workspace)
    assert settings.scripts_root == other
    assert settings.workspace == tmp_path / "other"
    assert resolve_settings(env={"FLWD_SCRIPTS": str(env_dir)}, cwd=workspace).scripts_root == \
        env_dir


def test_relative_scripts_flag_is_relative_to_cwd(workspace, home):
    (workspace / "alt").mkdir()
    settings = resolve_settings(scripts="alt", env={}, cwd=workspace)
    assert settings.scripts_root == workspace / "alt"
    assert settings.workspace == workspace


@pytest.mark.parametrize("make_file", [False, True], ids=["missing", "a-file"])
def test_explicit_scripts_that_is_not_a_directory(tmp_path, home, make_file):
    target = tmp_path / "nope"
    if make_file:
        target.write_text("x")
    with pytest.raises(UsageError, match="does not exist"):
        resolve_settings(scripts=str(target), env={}, cwd=tmp_path)
    settings = resolve_settings(scripts=str(target), env={}, cwd=tmp_path, require_scripts=False)
    assert settings.scripts_root == target


def test_data_dir_flag_and_env_reach_settings(workspace, tmp_path, home):
    settings = resolve_settings(data_dir=str(tmp_path / "flag"),
                                env={"FLWD_DATA_DIR": str(tmp_path / "env")}, cwd=workspace)
    assert settings.data_dir == tmp_path / "flag"
    settings = resolve_settings(env={"FLWD_DATA_DIR": str(tmp_path / "env")}, cwd=workspace)
    assert settings.data_dir == tmp_path / "env"


# -- FLWD_GRACE --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "grace"),
                         [("0", 0.0), ("2.5", 2.5), (" 10 ", 10.0), ("3600", 3600.0), ("1e2", 100.0),
                          ("", DEFAULT_GRACE)])
def test_grace_values(workspace, home, text, grace):
    assert resolve_settings(env={"FLWD_GRACE": text}, cwd=workspace).grace == grace


@pytest.mark.parametrize("text", ["-1", "3600.5", "abc", "5s", "nan", "inf", "-inf"])
def test_invalid_grace_is_a_usage_error(workspace, home, text):
    with pytest.raises(UsageError) as info:
        resolve_settings(env={"FLWD_GRACE": text}, cwd=workspace)
    assert "FLWD_GRACE" in info.value.detail
    assert repr(text) in info.value.detail
