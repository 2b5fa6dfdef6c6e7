"""How a script is run: interpreter, suffix table, #! lines; bash detection; display."""

from __future__ import annotations

from pathlib import Path

import pytest

from flwd.errors import ConfigInvalid, ExecutorUnavailable
from flwd.plan import display_command, script_command
from flwd.plan._commands import command_is_bash, is_bash

CONFIG = "scripts/demo/config.d/config.yaml"


def make(tmp_path: Path, name: str, body: str = "echo hi\n", *, executable: bool = False) -> Path:
    path = tmp_path / name
    path.write_text(body)
    path.chmod(0o755 if executable else 0o644)
    return path


# -- script_command -----------------------------------------------------------------------


def test_interpreter_wins_over_suffix_and_shebang(tmp_path):
    script = make(tmp_path, "100_main.py", "#!/usr/bin/env python3\n", executable=True)
    assert script_command("bash -eu", script, config_path=CONFIG) == ["bash", "-eu", str(script)]


def test_interpreter_is_split_like_a_shell(tmp_path):
    script = make(tmp_path, "100_x")
    assert script_command("'/opt/my tools/run' --flag=\"a b\"", script, config_path=CONFIG) == [
        "/opt/my tools/run", "--flag=a b", str(script)]


@pytest.mark.parametrize("interpreter", ["container:alpine:3", "  Container:busybox", "CONTAINER:x"])
def test_container_interpreter_needs_the_container_executor(tmp_path, interpreter):
    script = make(tmp_path, "100_main.sh")
    with pytest.raises(ExecutorUnavailable) as info:
        script_command(interpreter, script, config_path=CONFIG)
    assert CONFIG in info.value.detail
    assert interpreter in info.value.detail
    assert info.value.hint


def test_blank_interpreter_is_invalid(tmp_path):
    with pytest.raises(ConfigInvalid, match="interpreter is empty"):
        script_command("   ", make(tmp_path, "100_main.sh"), config_path=CONFIG)


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("100_a.sh", ["bash"]),
        ("100_a.bash", ["bash"]),
        ("100_a.SH", ["bash"]),
        ("100_a.py", ["python3"]),
        ("100_a.ps1", ["pwsh", "-NoProfile", "-NonInteractive", "-File"]),
        ("100_a.js", ["node"]),
        ("100_a.mjs", ["node"]),
        ("100_a.rb", ["ruby"]),
        ("100_a.pl", ["perl"]),
    ],
)
def test_suffix_table(tmp_path, name, prefix):
    # the suffix decides even over a #! line and the executable bit
    script = make(tmp_path, name, "#!/bin/sh\n", executable=True)
    assert script_command(None, script, config_path=CONFIG) == [*prefix, str(script)]
    assert script_command("", script, config_path=CONFIG) == [*prefix, str(script)]


def test_executable_with_shebang_runs_directly(tmp_path):
    script = make(tmp_path, "100_tool", "#!/usr/bin/env bash\necho\n", executable=True)
    assert script_command(None, script, config_path=CONFIG) == [str(script)]


def test_non_executable_with_shebang_runs_through_its_interpreter(tmp_path):
    script = make(tmp_path, "100_tool", "#!/usr/bin/env  python3 -u\r\nprint()\n")
    assert script_command(None, script, config_path=CONFIG) == [
        "/usr/bin/env", "python3", "-u", str(script)]


@pytest.mark.parametrize("body", ["echo no shebang\n", "", "#!\n", "# !/bin/sh\n"],
                         ids=["no-shebang", "empty", "bare-shebang", "comment"])
@pytest.mark.parametrize("executable", [True, False])
def test_unknown_script_kind_is_a_config_error(tmp_path, body, executable):
    script = make(tmp_path, "100_mystery.txt", body, executable=executable)
    with pytest.raises(ConfigInvalid) as info:
        script_command(None, script, config_path=CONFIG)
    assert "100_mystery.txt" in info.value.detail
    assert CONFIG in info.value.detail
    assert "interpreter" in (info.value.hint or "")


def test_missing_file_without_suffix_is_a_config_error(tmp_path):
    with pytest.raises(ConfigInvalid):
        script_command(None, tmp_path / "100_gone", config_path=CONFIG)


# -- bash detection -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        (["bash"], True),
        (["/bin/bash"], True),
        (["/usr/local/bin/bash", "-e"], True),
        (["/usr/bin/env", "bash"], True),
        (["env", "-S", "bash", "-x"], True),
        (["sh"], False),
        (["/bin/dash"], False),
        (["bash5"], False),
        (["python3"], False),
        (["/usr/bin/env"], False),
        (["/usr/bin/env", "python3"], False),
        ([], False),
    ],
)
def test_is_bash(prefix, expected):
    assert is_bash(prefix) is expected


def test_command_is_bash_for_full_argvs(tmp_path):
    script = make(tmp_path, "100_a.sh")
    assert command_is_bash(["bash", str(script)])
    assert command_is_bash(["/usr/bin/env", "bash", str(script)])
    assert not command_is_bash(["python3", str(script)])
    assert not command_is_bash(["sh", "-e", str(script)])


def test_command_is_bash_follows_the_shebang_of_a_direct_script(tmp_path):
    bash_tool = make(tmp_path, "100_b", "#!/usr/bin/env bash\n", executable=True)
    sh_tool = make(tmp_path, "100_s", "#!/bin/sh\n", executable=True)
    plain = make(tmp_path, "100_p", "echo\n", executable=True)
    assert command_is_bash(script_command(None, bash_tool, config_path=CONFIG))
    assert not command_is_bash(script_command(None, sh_tool, config_path=CONFIG))
    assert not command_is_bash([str(plain)])
    assert not command_is_bash([str(tmp_path / "gone")])


def test_command_is_bash_after_script_command_for_every_route(tmp_path):
    sh = make(tmp_path, "100_a.sh")
    assert command_is_bash(script_command(None, sh, config_path=CONFIG))
    assert command_is_bash(script_command("/bin/bash --norc", sh, config_path=CONFIG))
    assert not command_is_bash(script_command("sh", sh, config_path=CONFIG))
    not_exec = make(tmp_path, "100_n", "#!/bin/bash\n")
    assert command_is_bash(script_command(None, not_exec, config_path=CONFIG))


# -- display ------------------------------------------------------------------------------------


def test_display_command_shows_paths_under_cwd_relative(tmp_path):
    cwd = tmp_path / "ws"
    argv = ["bash", str(cwd / "scripts" / "demo" / "100_main.sh")]
    assert display_command(argv, cwd) == "bash scripts/demo/100_main.sh"


def test_display_command_keeps_other_paths_and_quotes_words(tmp_path):
    cwd = tmp_path / "ws"
    argv = ["/usr/bin/env", "python3", "-c", "print('x y')", str(cwd / "my dir" / "100_a.py")]
    assert display_command(argv, cwd) == (
        "/usr/bin/env python3 -c 'print('\"'\"'x y'\"'\"')' 'my dir/100_a.py'")
