"""The bash profile (BASH_ENV): rendered here, then sourced by a real bash."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from flwd.execute import profile_levels, render_profile

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

HOSTILE = [
    "it's",
    'say "hi"',
    "$(touch PWNED)",
    "`touch PWNED`",
    "${HOME}",
    "two  spaces",
    "line1\nline2\n",
    "back\\slash",
    "*",
    "-n",
    "",
    "semi; touch PWNED",
    "ünïcödé → 世界",
    "tab\there",
]


def run_bash(tmp_path: Path, profile: str, script: str) -> list[str]:
    """Source ``profile`` through BASH_ENV, run ``script``; return its NUL-separated output."""
    profile_path = tmp_path / "profile.sh"
    profile_path.write_text(profile)
    script_path = tmp_path / "script.sh"
    script_path.write_text(script)
    proc = subprocess.run(
        ["bash", str(script_path)], cwd=tmp_path, capture_output=True, timeout=30, check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "BASH_ENV": str(profile_path)},
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b"", proc.stderr.decode()
    assert not (tmp_path / "PWNED").exists(), "a value was executed by the shell"
    out = proc.stdout.decode()
    assert out.endswith("\0") or out == ""
    return out.split("\0")[:-1]


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# -- levels --------------------------------------------------------------------------


def test_profile_levels_from_root_down_to_the_job(tmp_path):
    root = tmp_path / "scripts"
    job = root / "team" / "tools" / "backup"
    assert profile_levels(root, job) == [root, root / "team", root / "team" / "tools", job]


def test_profile_levels_of_a_job_at_the_root(tmp_path):
    assert profile_levels(tmp_path, tmp_path) == [tmp_path]


def test_profile_levels_of_a_job_outside_the_root(tmp_path):
    elsewhere = tmp_path / "elsewhere" / "job"
    assert profile_levels(tmp_path / "scripts", elsewhere) == [elsewhere]


# -- sourcing order ---------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """scripts root (with an awkward name) → team → job, vars and libs at every level."""
    root = tmp_path / "my scripts 'dir'"
    job = root / "team" / "job"
    for level, tag in ((root, "root"), (root / "team", "team"), (job, "job")):
        for kind in ("vars", "libs"):
            folder = level / "config.d" / kind
            write(folder / "20-second.sh", f'ORDER+="{tag}-{kind}-20 "\n')
            write(folder / "10-first.sh", f'ORDER+="{tag}-{kind}-10 "\n')
            write(folder / "notes.txt", 'ORDER+="NOT-SH "\n')
            (folder / "dir.sh").mkdir()
    return root, job


def test_outer_levels_are_sourced_before_inner_ones_vars_before_libs(tmp_path, tree):
    root, job = tree
    profile = render_profile(profile_levels(root, job), {}, {})
    (order,) = run_bash(tmp_path, profile, 'printf "%s\\0" "$ORDER"')
    assert order.split() == [
        f"{tag}-{kind}-{n}"
        for tag in ("root", "team", "job") for kind in ("vars", "libs") for n in ("10", "20")
    ]


def test_libs_functions_and_vars_exports_are_available(tmp_path):
    job = tmp_path / "scripts" / "job"
    write(tmp_path / "scripts" / "config.d" / "vars" / "a.sh", 'GREETING="Hello"\nexport GREETING\n')
    write(job / "config.d" / "libs" / "common.sh", 'say_hello() { printf "%s, %s!\\0" "$GREETING" "$1"; }\n')
    profile = render_profile(profile_levels(tmp_path / "scripts", job), {"who": "Alice"}, {})
    assert run_bash(tmp_path, profile, 'say_hello "$who"; printf "%s\\0" "$(printenv GREETING)"') == [
        "Hello, Alice!", "Hello"]


def test_missing_config_dirs_are_fine(tmp_path):
    profile = render_profile([tmp_path / "nothing" / "here"], {"x": "1"}, {})
    assert run_bash(tmp_path, profile, 'printf "%s\\0" "$x" "${__flwd_f-unset}"') == ["1", "unset"]


def test_arguments_override_values_from_vars(tmp_path):
    write(tmp_path / "config.d" / "vars" / "defaults.sh", "who=from-vars\n")
    profile = render_profile([tmp_path], {"who": "from-args"}, {})
    assert run_bash(tmp_path, profile, 'printf "%s\\0" "$who"') == ["from-args"]


# -- values ---------------------------------------------------------------------------------


def test_scalars(tmp_path):
    values: dict[str, Any] = {"name": "alice", "loud": True, "quiet": False, "count": 5,
                              "ratio": 0.5, "dry-run": True, "a.b": "dotted", "unset_me": None}
    profile = render_profile([], values, {})
    out = run_bash(tmp_path, profile, 'printf "%s\\0" "$name" "$loud" "$quiet" "$count" "$ratio" '
                                      '"$dry_run" "$a_b" "${unset_me-UNSET}"')
    assert out == ["alice", "true", "false", "5", "0.5", "true", "dotted", "UNSET"]


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_hostile_scalar_values_arrive_verbatim(tmp_path, value):
    profile = render_profile([], {"v": value}, {})
    assert run_bash(tmp_path, profile, 'printf "%s\\0" "$v"') == [value]


def test_arrays_keep_items_and_order(tmp_path):
    profile = render_profile([], {"tags": HOSTILE, "nums": [1, 2.5, True], "empty": []}, {})
    out = run_bash(tmp_path, profile,
                   'printf "%s\\0" "${tags[@]}"; printf "%s\\0" "${nums[@]}" "${#empty[@]}";'
                   'declare -p tags | cut -c1-11 | tr "\\n" "\\0"')
    assert out == [*HOSTILE, "1", "2.5", "true", "0", "declare -a "]


def test_associative_arrays_with_hostile_keys_and_values(tmp_path):
    meta = {"env": "prod", "a]b": "x", "x y": "sp ace", "'q": '"dq"', "$(touch PWNED)": "k",
            "line\nbreak": "$(touch PWNED)", "flag": True}
    profile = render_profile([], {"meta": meta, "none": {}}, {})
    out = run_bash(tmp_path, profile,
                   'for k in "${!meta[@]}"; do printf "%s\\0%s\\0" "$k" "${meta[$k]}"; done;'
                   'printf "%s\\0" "${#none[@]}"; declare -p meta | cut -c1-11 | tr "\\n" "\\0"')
    *pairs, empty_count, declared = out
    got = dict(zip(pairs[::2], pairs[1::2], strict=True))
    assert got == {k: ("true" if v is True else v) for k, v in meta.items()}
    assert empty_count == "0"
    assert declared == "declare -A "


def test_values_are_shell_variables_not_environment(tmp_path):
    secret = tmp_path / "tok"
    secret.write_text("s3cr3t")
    profile = render_profile([], {"name": "alice", "tags": ["a"]}, {"token": str(secret)})
    out = run_bash(tmp_path, profile,
                   'printf "%s\\0" "$name" "$token" "$(env | grep -c -e alice -e s3cr3t)"')
    assert out == ["alice", "s3cr3t", "0"]


# -- secrets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["hunter2", "it's $(touch PWNED) `x` \"q\" \\ *", "multi\nline"],
                         ids=["plain", "hostile", "multiline"])
def test_secret_is_read_from_its_file_and_never_in_the_profile(tmp_path, value):
    secrets = tmp_path / "run dir's" / "secrets"
    secrets.mkdir(parents=True)
    path = secrets / "api-token"
    path.write_text(value)
    profile = render_profile([tmp_path], {"user": "bob"}, {"api-token": str(path)})
    assert value not in profile
    assert "hunter2" not in profile
    assert run_bash(tmp_path, profile, 'printf "%s\\0" "$api_token" "$user"') == [value, "bob"]


def test_secret_file_trailing_newline_is_dropped(tmp_path):
    path = tmp_path / "s"
    path.write_text("value\n")
    profile = render_profile([], {}, {"s": str(path)})
    assert run_bash(tmp_path, profile, 'printf "%s\\0" "$s"') == ["value"]


def test_arguments_named_like_shell_variables_do_not_clobber_them() -> None:
    from flwd.execute._profile import shell_variable

    assert shell_variable("PATH") is None
    assert shell_variable("IFS") is None
    assert shell_variable("BASH_ENV") is None
    assert shell_variable("seconds") == "seconds"  # case-sensitive: only SECONDS is bash's
    assert shell_variable("secret-token") == "secret_token"
