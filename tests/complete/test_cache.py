"""The job index cache: reused while fresh (and then the fast path stays lean), rebuilt when
a config, a job directory or flwd.yaml changes, and never a reason for completion to fail.

Whether a call rebuilt the index is observed, not guessed: the subprocess runs with
``-X importtime`` and a rebuild imports :mod:`flwd.complete._build`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from flwd.complete import _cache, _locate
from flwd.complete._build import build_index
from flwd.settings import resolve_settings
from tests.complete.conftest import DEPLOY, HEAVY, Completer, imported, make_contract_workspace
from tests.conftest import write_job


def call(completer: Completer, *args: str) -> tuple[list[str], bool]:
    """The inserts of one real ``flwd __complete`` and whether it rebuilt the index."""
    done = completer.run(*args, profile=True)
    assert done.returncode == 0, done.stderr
    modules = imported(done.stderr)
    inserts = [line.split('"')[3] for line in done.stdout.splitlines()]
    return inserts, "flwd.complete._build" in modules


def cache_files(data_dir: Path) -> list[Path]:
    folder = data_dir / "completion"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_a_fresh_cache_is_read_without_any_heavy_import(completer: Completer) -> None:
    first = completer.run("2", "sh", profile=True)
    assert "flwd.complete._build" in imported(first.stderr)  # nothing cached yet
    [cache] = cache_files(completer.data_dir)
    written = cache.stat().st_mtime_ns
    for args in (("2", "sh"), ("1",), ("5", "alpha", "deploy", "--", "--env", "p")):
        done = completer.run(*args, profile=True)
        assert done.returncode == 0 and done.stdout
        modules = imported(done.stderr)
        assert "flwd.complete._main" in modules  # the profile did cover the fast path
        heavy = {m for m in modules if m.split(".")[0] in HEAVY}
        assert not heavy, f"the fast path imported {sorted(heavy)}"
        assert not {m for m in modules if m.startswith(("flwd.cli", "flwd.jobs", "flwd.errors",
                                                        "flwd.complete._build"))}
    assert cache.stat().st_mtime_ns == written  # read, never rewritten


def test_an_edited_config_is_seen(completer: Completer, contract_ws: Path) -> None:
    assert call(completer, "5", "alpha", "deploy", "--env", "") == (["prod", "staging"], True)
    assert call(completer, "5", "alpha", "deploy", "--env", "") == (["prod", "staging"], False)
    config = contract_ws / "scripts/alpha/deploy/config.d/config.yaml"
    config.write_text(DEPLOY.replace("[prod, staging]", "[prod, staging, qa]"))
    assert call(completer, "5", "alpha", "deploy", "--env", "") == (
        ["prod", "staging", "qa"], True)
    assert call(completer, "5", "alpha", "deploy", "--env", "") == (
        ["prod", "staging", "qa"], False)


def test_a_new_job_directory_is_seen(completer: Completer, contract_ws: Path) -> None:
    assert call(completer, "3", "alpha", "") == (["build", "deploy"], True)
    write_job(contract_ws, "alpha/check", "interpreter: bash\n", {})
    assert call(completer, "3", "alpha", "") == (["build", "check", "deploy"], True)
    # Deeper: a new group under an existing one.
    write_job(contract_ws, "alpha/more/deep", "interpreter: bash\n", {})
    assert call(completer, "4", "alpha", "more", "") == (["deep"], True)
    assert call(completer, "4", "alpha", "more", "") == (["deep"], False)


def test_a_config_created_in_an_existing_config_dir_is_seen(completer: Completer,
                                                            contract_ws: Path) -> None:
    config_dir = contract_ws / "scripts/alpha/later/config.d"
    (config_dir / "vars").mkdir(parents=True)  # config.d without a config: not a job
    (config_dir.parent / "100_main.sh").write_text("true\n")
    assert call(completer, "3", "alpha", "") == (["build", "deploy"], True)
    (config_dir / "config.yaml").write_text("interpreter: bash\n")
    assert call(completer, "3", "alpha", "") == (["build", "deploy", "later"], True)


def test_a_deleted_job_disappears(completer: Completer, contract_ws: Path) -> None:
    assert call(completer, "3", "alpha", "") == (["build", "deploy"], True)
    shutil.rmtree(contract_ws / "scripts/alpha/build")
    assert call(completer, "3", "alpha", "") == (["deploy"], True)
    (contract_ws / "scripts/alpha/deploy/config.d/config.yaml").unlink()
    assert call(completer, "2", "al") == ([], True)


def test_aliases_file_changes_are_seen(completer: Completer, contract_ws: Path) -> None:
    aliases = contract_ws / "scripts/flwd.yaml"
    assert call(completer, "2", "s") == (["ship"], True)
    aliases.write_text(aliases.read_text() + "  - {from: alpha/build, to: make}\n")
    assert call(completer, "2", "m") == (["make"], True)
    aliases.unlink()
    assert call(completer, "2", "s") == ([], True)
    assert call(completer, "2", "s") == ([], False)
    aliases.write_text("aliases:\n  - {from: alpha/build, to: shape}\n")  # created again
    assert call(completer, "2", "s") == (["shape"], True)


def test_broken_configs_only_remove_their_job(completer: Completer, contract_ws: Path) -> None:
    (contract_ws / "scripts/alpha/build/config.d/config.yaml").write_text("argspec: [unclosed\n")
    assert call(completer, "3", "alpha", "") == (["deploy"], True)
    (contract_ws / "scripts/flwd.yaml").write_text("aliases: {{{\n")
    inserts, _ = call(completer, "1")
    assert "alpha" in inserts and "ship" not in inserts
    assert call(completer, "5", "alpha", "deploy", "--env", "") == (["prod", "staging"], False)


def test_an_unwritable_data_dir_still_answers(contract_ws: Path, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")  # tests run as root: a file is what surely cannot be a dir
    completer = Completer(contract_ws, not_a_dir)
    assert call(completer, "2", "sh") == (["ship"], True)
    assert call(completer, "2", "sh") == (["ship"], True)  # nothing could be cached
    assert not_a_dir.read_text() == ""
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_corrupt_cache_is_rebuilt(completer: Completer) -> None:
    assert call(completer, "2", "sh") == (["ship"], True)
    [cache] = cache_files(completer.data_dir)
    cache.write_bytes(b"\x00garbage")
    assert call(completer, "2", "sh") == (["ship"], True)
    assert call(completer, "2", "sh") == (["ship"], False)


def test_one_cache_file_per_scripts_root(contract_ws: Path, tmp_path: Path) -> None:
    other = make_contract_workspace(tmp_path / "other")
    (other / "scripts/flwd.yaml").unlink()
    data = tmp_path / "data"
    assert call(Completer(contract_ws, data), "2", "sh") == (["ship"], True)
    assert call(Completer(other, data), "2", "sh") == ([], True)
    assert call(Completer(contract_ws, data), "2", "sh") == (["ship"], False)
    assert len(cache_files(data)) == 2
    assert oct(data.stat().st_mode & 0o777) == "0o700"


def test_a_workspace_without_scripts_offers_flwds_own_words(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert call(Completer(empty, tmp_path / "data"), "2", "") == (["completion", "init"], False)
    assert not (tmp_path / "data").exists()


# -- in-process: the cache module and the cheap settings resolution ------------------------


def test_load_refuses_another_root_or_format(contract_ws: Path, tmp_path: Path) -> None:
    root = str(contract_ws / "scripts")
    index = build_index(root)
    path = str(tmp_path / "c" / "x.idx")
    assert _cache.save(path, index)
    assert _cache.load(path, root) == index
    assert _cache.load(path, root + "2") is None
    index["format"] = -1
    assert _cache.save(path, index)
    assert _cache.load(path, root) is None
    assert _cache.load(str(tmp_path / "missing.idx"), root) is None


def test_freshness_is_stat_only_and_sees_a_touched_directory(contract_ws: Path) -> None:
    index = build_index(str(contract_ws / "scripts"))
    assert _cache.is_fresh(index)
    group = contract_ws / "scripts/alpha"
    stat = group.stat()
    os.utime(group, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert not _cache.is_fresh(index)
    paths = [path for path, _ in index["dirs"]]
    assert str(contract_ws / "scripts") in paths and str(group) in paths
    assert not [p for p in paths if "config.d" in p]  # config.d is not entered


def test_hidden_and_skipped_directories_are_not_walked(contract_ws: Path) -> None:
    for name in (".hidden", "node_modules", "__pycache__"):
        write_job(contract_ws, f"{name}/job", "interpreter: bash\n", {})
    os.symlink(contract_ws / "scripts/alpha", contract_ws / "scripts/linked")
    index = build_index(str(contract_ws / "scripts"))
    assert set(index["jobs"]) == {"alpha.build", "alpha.deploy"}
    walked = " ".join(path for path, _ in index["dirs"])
    assert ".hidden" not in walked and "node_modules" not in walked and "linked" not in walked


@pytest.mark.parametrize("scripts", [None, "scripts", "../ws/scripts", "~/x"])
def test_locate_agrees_with_settings(contract_ws: Path, scripts: str | None,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(contract_ws))
    (contract_ws / "x").mkdir()
    cwd = contract_ws / "scripts" / "alpha"
    settings = resolve_settings(scripts=scripts, env={}, cwd=cwd, require_scripts=False)
    found = _locate.scripts_root(scripts, {}, str(cwd))
    if found is None:
        assert not settings.scripts_root.is_dir()
    else:
        assert found == os.path.abspath(settings.scripts_root)


@pytest.mark.parametrize("env", [{}, {"FLWD_DATA_DIR": "~/d"}, {"DATA_DIR": "rel"},
                                 {"XDG_DATA_HOME": "/xdg"}, {"FLWD_DATA_DIR": "/a", "DATA_DIR": "/b"}])
def test_data_dir_agrees_with_settings(env: dict[str, str], contract_ws: Path) -> None:
    settings = resolve_settings(env=env, cwd=contract_ws)
    assert _locate.data_dir(None, env) == str(settings.data_dir)
    assert _locate.data_dir("/flag", env) == str(resolve_settings(data_dir="/flag", env=env,
                                                                 cwd=contract_ws).data_dir)


def test_jobs_of_sources_are_completed_and_follow_the_sources(
        completer: Completer, contract_ws: Path, tmp_path: Path) -> None:
    """A source registered, refreshed or removed through the CLI changes the completions
    (the sources marker invalidates the index; no guess, no sleep)."""
    from tests.conftest import git, make_git_repo, run_cli

    repo = make_git_repo(tmp_path / "repos" / "tools", {
        "scripts/lint/config.d/config.yaml":
            "argspec:\n  args:\n    - {name: level, type: string, enum: [low, high]}\n",
        "scripts/lint/100_run.sh": "echo lint\n"})
    assert "tools" not in call(completer, "1", "")[0]
    added = run_cli([":sources", "add", "--type", "git", "--name", "tools", "--url",
                     f"file://{repo}", "--ref", "main", "--allow-path", str(tmp_path / "repos")],
                    cwd=contract_ws, data_dir=completer.data_dir)
    assert added.returncode == 0, added.stderr
    assert call(completer, "1", "to") == (["tools"], True)
    assert call(completer, "2", "tools", "") == (["lint"], False)
    assert call(completer, "4", "tools/lint", "--level", "") == (["low", "high"], False)
    make_git_repo(repo, {"scripts/fmt/config.d/config.yaml": "interpreter: bash\n",
                         "scripts/fmt/100_run.sh": "echo fmt\n"}, message="fmt")
    assert call(completer, "2", "tools", "")[0] == ["lint"]  # pinned: not refreshed yet
    refreshed = run_cli([":sources", "refresh", "tools"], cwd=contract_ws,
                        data_dir=completer.data_dir)
    assert refreshed.returncode == 0, refreshed.stderr
    assert git(repo, "rev-parse", "HEAD")[:12] in refreshed.stdout
    assert call(completer, "2", "tools", "") == (["fmt", "lint"], True)
    removed = run_cli([":sources", "remove", "tools"], cwd=contract_ws,
                      data_dir=completer.data_dir)
    assert removed.returncode == 0, removed.stderr
    assert call(completer, "1", "to") == ([], True)


def test_a_job_with_nothing_to_run_is_offered_as_soon_as_its_config_appears(
        completer: Completer, contract_ws: Path) -> None:
    """A config without NNN_ scripts is a job (its runs complete with zero steps, with a
    warning), so it is offered and its flags complete; the stat-only freshness check
    notices the new config."""
    assert call(completer, "3", "alpha", "") == (["build", "deploy"], True)
    job = contract_ws / "scripts/alpha/later"
    (job / "config.d").mkdir(parents=True)
    (job / "config.d" / "config.yaml").write_text(
        "argspec: {args: [{name: level, type: string, enum: [low, high]}]}\n")
    assert call(completer, "3", "alpha", "") == (["build", "deploy", "later"], True)
    assert call(completer, "5", "alpha", "later", "--level", "") == (["low", "high"], False)
    [cache] = cache_files(completer.data_dir)
    index = _cache.load(str(cache), str(contract_ws / "scripts"))
    assert index is not None and "alpha.later" in index["jobs"]
