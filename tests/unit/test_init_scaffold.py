"""``flwd init KIND PATH``: the scaffolded job is valid, discoverable and runs."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from flwd.cli._init import KINDS, missing_interpreter, scaffold
from flwd.errors import UsageError
from flwd.execute import profile_levels, render_profile
from flwd.jobs import discover


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "scripts"
    path.mkdir()
    return path


def test_kinds():
    assert set(KINDS) == {"bash", "sh", "python", "pwsh"}


@pytest.mark.parametrize(
    ("kind", "script", "interpreter", "extra"),
    [
        ("bash", "100_main.sh", "bash", ["config.d/vars/10-defaults.sh", "config.d/libs/common.sh"]),
        ("sh", "100_main.sh", "sh", []),
        ("python", "100_main.py", None, []),
        ("pwsh", "100_main.ps1", None, []),
        ("BASH", "100_main.sh", "bash", ["config.d/vars/10-defaults.sh", "config.d/libs/common.sh"]),
    ],
)
def test_scaffold_writes_a_discoverable_job(root, kind, script, interpreter, extra):
    written = scaffold(root, kind, "tools/backup")
    job_dir = root / "tools" / "backup"
    assert written == [job_dir / "config.d" / "config.yaml", *(job_dir / e for e in extra),
                       job_dir / script]
    assert (job_dir / "config.d" / "vars").is_dir()
    assert (job_dir / "config.d" / "libs").is_dir()
    assert stat.S_IMODE((job_dir / script).stat().st_mode) == 0o755
    catalog = discover(root)
    assert catalog.errors == []
    assert catalog.warnings == []
    (job,) = catalog.jobs
    assert job.id == "tools.backup"
    assert job.name == "Tools Backup"
    assert job.scripts == (script,)
    assert job.config.interpreter == interpreter
    assert [arg.name for arg in job.config.args] == ["who"]
    assert "flwd tools backup --who Alice" in (job_dir / "config.d" / "config.yaml").read_text()


@pytest.mark.parametrize(
    ("path", "rel", "job_id"),
    [
        ("hello", "hello", "hello"),
        ("hello.world", "hello/world", "hello.world"),
        ("a/b/c", "a/b/c", "a.b.c"),
        ("a\\b", "a/b", "a.b"),
        ("a//b/", "a/b", "a.b"),
        ("My-Tool_2", "My-Tool_2", "My-Tool_2"),
        ("9lives", "9lives", "9lives"),
    ],
)
def test_job_paths(root, path, rel, job_id):
    scaffold(root, "sh", path)
    assert (root / rel / "config.d" / "config.yaml").is_file()
    assert [job.id for job in discover(root).jobs] == [job_id]


@pytest.mark.parametrize("path", ["scripts/tools/backup", "./scripts/tools/backup",
                                  "scripts\\tools\\backup", "./tools/backup", "tools.backup"])
def test_the_scripts_folder_in_front_is_the_root_itself(root, path):
    scaffold(root, "sh", path)
    assert [job.id for job in discover(root).jobs] == ["tools.backup"]
    assert not (root / "scripts").exists()


def test_an_absolute_path_inside_the_root(root):
    scaffold(root, "sh", str(root / "tools" / "backup"))
    assert [job.id for job in discover(root).jobs] == ["tools.backup"]


@pytest.mark.parametrize("where", ["sibling", "root", "parent"])
def test_an_absolute_path_outside_the_root_is_refused(root, tmp_path, where):
    path = {"sibling": tmp_path / "other" / "job", "root": root, "parent": tmp_path}[where]
    with pytest.raises(UsageError) as info:
        scaffold(root, "bash", str(path))
    assert "outside the scripts root" in info.value.detail
    assert str(root) in (info.value.hint or "")
    assert list(root.iterdir()) == []


def test_missing_interpreter(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert [missing_interpreter(kind) for kind in KINDS] == ["bash", "sh", "python3", "pwsh"]
    for name in ("bash", "sh", "python3", "pwsh"):
        (tmp_path / name).symlink_to(sys.executable)
    assert [missing_interpreter(kind) for kind in KINDS] == [None] * 4


def test_backslash_absolute_path_stays_under_the_root(root, tmp_path):
    scaffold(root, "sh", "\\abs")
    assert (root / "abs" / "config.d" / "config.yaml").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scripts"]


@pytest.mark.parametrize(
    "path",
    ["", "/", ".", "..", "../evil", "a/../../evil", "a/./b", "/abs/job", "/etc", "a b", "-x",
     "_x", "a/-b", "~/x", "a$b", "a;b", "é", "a\nb", "a*b", "C:/x", "a/b?"],
)
def test_invalid_job_paths(root, tmp_path, path):
    with pytest.raises(UsageError) as info:
        scaffold(root, "bash", path)
    assert "invalid job path" in info.value.detail
    assert info.value.hint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scripts"]
    assert list(root.iterdir()) == []


def test_unknown_kind(root):
    with pytest.raises(UsageError) as info:
        scaffold(root, "ruby", "job")
    assert "ruby" in info.value.detail
    assert "bash, sh, python, pwsh" in (info.value.hint or "")
    assert list(root.iterdir()) == []


def test_existing_job_is_refused_without_force(root):
    scaffold(root, "bash", "job")
    config = root / "job" / "config.d" / "config.yaml"
    config.write_text("job:\n  name: Mine\n")
    mine = root / "job" / "200_keep.sh"
    mine.write_text("echo keep\n")
    with pytest.raises(UsageError) as info:
        scaffold(root, "python", "job")
    assert str(config) in info.value.detail
    assert "--force" in (info.value.hint or "")
    assert config.read_text() == "job:\n  name: Mine\n"
    assert not (root / "job" / "100_main.py").exists()
    scaffold(root, "python", "job", force=True)
    assert "Mine" not in config.read_text()
    assert (root / "job" / "100_main.py").is_file()
    assert mine.read_text() == "echo keep\n"


@pytest.mark.parametrize("path", ["yes", "no", "on", "off", "true", "false", "null", "1_000"])
def test_yaml_special_words_stay_strings(root, path):
    scaffold(root, "sh", path)
    catalog = discover(root)
    assert catalog.errors == []
    (job,) = catalog.jobs
    assert job.name == path.title()


# -- the scaffolded scripts run ---------------------------------------------------------------


def run(argv: list[str], env: dict[str, str], cwd: Path) -> str:
    proc = subprocess.run(argv, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
                          cwd=cwd, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_scaffold_runs_with_the_profile(root, tmp_path):
    scaffold(root, "bash", "greet")
    job_dir = root / "greet"
    profile = tmp_path / "profile.sh"
    profile.write_text(render_profile(profile_levels(root, job_dir), {"who": "Alice"}, {}))
    out = run(["bash", str(job_dir / "100_main.sh")], {"BASH_ENV": str(profile)}, tmp_path)
    assert out == "Hello, Alice!\n"


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs sh")
def test_sh_scaffold_reads_arg_env(root, tmp_path):
    scaffold(root, "sh", "greet")
    out = run(["sh", str(root / "greet" / "100_main.sh")], {"ARG_WHO": "Bob"}, tmp_path)
    assert out == "Hello, Bob!\n"


def test_python_scaffold_reads_args_json(root, tmp_path):
    scaffold(root, "python", "greet")
    out = run([sys.executable, str(root / "greet" / "100_main.py")],
              {"FLWD_ARGS_JSON": json.dumps({"who": "Carol"})}, tmp_path)
    assert out == "Hello, Carol!\n"
