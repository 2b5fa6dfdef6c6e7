"""An argument's ``format``: only the reference's values are accepted, and ``file`` /
``directory`` values are checked against the filesystem (issue 12, item 9)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from flwd.errors import ArgsInvalid
from flwd.jobs import Arg, check_paths, discover, path_problems


def write_config(root: Path, text: str) -> None:
    (root / "job" / "config.d").mkdir(parents=True)
    (root / "job" / "config.d" / "config.yaml").write_text(text)
    (root / "job" / "100_run.sh").write_text("echo hi\n")


@pytest.mark.parametrize("form", ["secret", "path", "file", "directory", ""])
def test_the_reference_formats_are_accepted(form: str) -> None:
    Arg(name="x", type="string", format=form)


@pytest.mark.parametrize("form", ["dir", "email", "Directory", "uri"])
def test_an_unknown_format_is_a_config_error_naming_the_known_ones(form: str,
                                                                  tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        Arg(name="x", type="string", format=form)
    assert f"'{form}' is not a valid format (use one of: secret, path, file, directory)" \
        in str(info.value)
    write_config(tmp_path, f"argspec:\n  args:\n    - {{name: x, type: string, format: {form}}}\n")
    catalog = discover(tmp_path)
    assert catalog.jobs == []
    [error] = catalog.errors
    assert "argspec.args[0].format" in error.message
    assert "secret, path, file, directory" in error.message


@pytest.mark.parametrize("kind", ["integer", "array", "boolean"])
def test_path_formats_are_for_strings(kind: str) -> None:
    with pytest.raises(ValidationError, match="format directory only applies to string"):
        Arg(name="x", type=kind, format="directory")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "dir").mkdir()
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    (tmp_path / "linked-dir").symlink_to(tmp_path / "dir")
    return tmp_path


ARGS = [Arg(name="dest", type="string", format="directory"),
        Arg(name="input", type="string", format="file"),
        Arg(name="out", type="string", format="path"),
        Arg(name="plain", type="string")]


@pytest.mark.parametrize("values", [
    {"dest": "dir", "input": "file.txt"},
    {"dest": "linked-dir", "input": "./file.txt"},
    {"dest": "ABS/dir", "input": "ABS/file.txt"},
    {},  # not given: nothing to check
    {"out": "not/there/yet", "plain": "/nope"},  # path and plain strings are not checked
])
def test_existing_paths_pass(tree: Path, values: dict[str, str]) -> None:
    values = {key: value.replace("ABS", str(tree)) for key, value in values.items()}
    assert path_problems(ARGS, values, tree) == []


def test_every_bad_path_is_named_with_what_is_wrong(tree: Path) -> None:
    problems = path_problems(ARGS, {"dest": "file.txt", "input": "dir"}, tree)
    assert [(p.arg, p.message) for p in problems] == [
        ("dest", "'file.txt' is not a directory (format: directory)"),
        ("input", "'dir' is not a file (format: file)")]
    [missing, dangling] = [path_problems(ARGS, {"dest": value}, tree)[0].message
                           for value in ("nope", "dangling")]
    assert missing == "'nope' does not exist (format: directory)"
    assert dangling == "'dangling' is a broken symlink (format: directory)"


def test_relative_paths_start_at_the_base(tree: Path, tmp_path_factory: pytest.TempPathFactory,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(elsewhere)  # the caller's own directory does not matter
    assert path_problems(ARGS, {"dest": "dir"}, tree) == []
    assert path_problems(ARGS, {"dest": "dir"}, elsewhere) != []


def test_check_paths_raises_one_args_invalid(tree: Path) -> None:
    with pytest.raises(ArgsInvalid) as info:
        check_paths(ARGS, {"dest": "nope", "input": "nope"}, tree, job_id="backup")
    error = info.value
    assert error.detail == ("2 invalid arguments for job backup: dest: 'nope' does not exist "
                            "(format: directory) (and 1 more)")
    assert error.hint == f"give an existing path; a relative one starts at {tree}, where the " \
                         "job runs"
    assert [e["arg"] for e in error.errors] == ["dest", "input"]
