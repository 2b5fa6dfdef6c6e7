"""flwd._codecache: the code dataclasses, attrs and typing compile, kept between processes —
used only from this user's own file, never changing what a class does."""

from __future__ import annotations

import json
import marshal
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FLWD, REPO, flwd_env, write_job

# Each process is a fresh interpreter: dataclasses compile at import, once per process.
PROGRAM = r'''
import json, sys
from flwd import _codecache
installed = _codecache.install()
from dataclasses import InitVar, dataclass, field, fields, FrozenInstanceError

@dataclass(frozen=True, slots=True, kw_only=True)
class Frozen:
    name: str
    tags: tuple = field(default_factory=tuple)
    size: int = 3

@dataclass(order=True)
class Ordered:
    key: int
    label: str = "x"
    scale: InitVar[int] = 2
    def __post_init__(self, scale):
        self.key *= scale

import typing
import attr

@attr.define
class Point:  # attrs compiles in a module with ``from __future__ import annotations``
    x: int
    y: "list[int]" = attr.Factory(list)

point = Point(1)

@attr.frozen
class Key:  # hashable: its __hash__ holds hash() of a string, another in each process
    a: int

assert hash(Key(1)) == hash(Key(1)) and len({Key(1), Key(1), Key(2)}) == 2

class Hinted:  # string annotations: typing compiles each (a ForwardRef)
    a: "list[int]"
    b: "Frozen | None"

hints = typing.get_type_hints(Hinted)
frozen = Frozen(name="a")
try:
    frozen.name = "b"
    mutable = True
except FrozenInstanceError:
    mutable = False
try:
    Frozen("positional")
    positional = True
except TypeError:
    positional = False
print(json.dumps({
    "installed": installed,
    "compiled": len(_codecache._added),
    "repr": repr(frozen), "equal": frozen == Frozen(name="a", tags=(), size=3),
    "hash": hash(frozen) == hash(Frozen(name="a")), "mutable": mutable,
    "positional": positional,
    "ordered": [o.key for o in sorted([Ordered(3), Ordered(1, scale=5)])],
    "fields": [f.name for f in fields(Ordered)],
    # A future import leaking into the compile would make these strings.
    "return": repr(Ordered.__init__.__annotations__.get("return")),
    "marker": getattr(sys, "flwd_test_marker", None),
    "hints": repr(hints),
    "attrs": [repr(point), point == Point(1, []), repr(Point.__init__.__annotations__)],
}))
_codecache.save()
'''


def _run(cache_home: Path, **env: str) -> dict[str, object]:
    environment = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    environment.pop("FLWD_CODE_CACHE", None)
    environment.update(env)
    done = subprocess.run([sys.executable, "-c", PROGRAM], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _cache_file(cache_home: Path) -> Path:
    files = list((cache_home / "flwd").glob("code-*.bin"))
    assert len(files) == 1, files
    return files[0]


EXPECTED = {
    "repr": "Frozen(name='a', tags=(), size=3)", "equal": True, "hash": True,
    "mutable": False, "positional": False, "ordered": [5, 6], "fields": ["key", "label"],
    "return": "None", "marker": None,
    "hints": "{'a': list[int], 'b': __main__.Frozen | None}",
    "attrs": ["Point(x=1, y=[])", True, "{'return': None, 'x': <class 'int'>, 'y': 'list[int]'}"],
}


def test_a_second_process_compiles_nothing_and_its_classes_behave_the_same(
        tmp_path: Path) -> None:
    first = _run(tmp_path)
    assert first["installed"] is True
    assert isinstance(first["compiled"], int) and first["compiled"] > 0
    path = _cache_file(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    written = path.stat().st_mtime_ns
    second = _run(tmp_path)
    assert second["compiled"] == 0  # every text was found (or is not kept: attrs' hashes)
    assert path.stat().st_mtime_ns == written  # a warm start writes nothing
    without = _run(tmp_path / "off", FLWD_CODE_CACHE="0")
    for result in (first, second, without):
        assert {key: result[key] for key in EXPECTED} == EXPECTED


def _poison(path: Path) -> None:
    """Make every stored function set a marker first: proof of where the code came from."""
    version, entries = marshal.loads(path.read_bytes())
    poisoned = {}
    for key in entries:
        flags, mode, filename, text = key.split("\0", 3)
        if mode != "exec":  # typing's annotations (eval): left as they are
            poisoned[key] = entries[key]
            continue
        code = compile("import sys\nsys.flwd_test_marker = 'from the cache'\n" + text,
                       filename, mode, int(flags), dont_inherit=True)
        poisoned[key] = marshal.dumps(code)
    path.write_bytes(marshal.dumps((version, poisoned)))
    os.chmod(path, 0o600)


def test_the_stored_code_is_what_runs_only_from_a_file_nobody_else_may_write(
        tmp_path: Path) -> None:
    _run(tmp_path)
    path = _cache_file(tmp_path)
    _poison(path)
    assert _run(tmp_path)["marker"] == "from the cache"  # the cache is really used
    _poison(path)
    os.chmod(path, 0o620)  # group-writable: another user could have put code there
    result = _run(tmp_path)
    assert result["marker"] is None
    assert result["compiled"] and isinstance(result["compiled"], int)
    # ... and the file written after is this process's own compile, private again.
    assert path.stat().st_mode & 0o777 == 0o600
    assert _run(tmp_path)["marker"] is None


@pytest.mark.parametrize("content", [b"", b"garbage\x00\xff", marshal.dumps(("other", {})),
                                     marshal.dumps(["not", "a", "tuple"])])
def test_a_corrupt_or_foreign_file_is_compiled_over(tmp_path: Path, content: bytes) -> None:
    folder = tmp_path / "flwd"
    folder.mkdir(mode=0o700)
    _run(tmp_path)
    path = _cache_file(tmp_path)
    path.write_bytes(content)
    result = _run(tmp_path)
    assert {key: result[key] for key in EXPECTED} == EXPECTED
    assert result["compiled"]
    assert _run(tmp_path)["compiled"] == 0  # rewritten whole


def test_it_can_be_turned_off(tmp_path: Path) -> None:
    result = _run(tmp_path, FLWD_CODE_CACHE="0")
    assert result["installed"] is False
    assert not (tmp_path / "flwd").exists()
    assert {key: result[key] for key in EXPECTED} == EXPECTED


def test_a_cache_that_cannot_be_written_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "flwd").write_text("a file where the folder would be")
    result = _run(tmp_path)
    assert {key: result[key] for key in EXPECTED} == EXPECTED


def test_flwd_runs_a_job_with_it_and_leaves_it_written(tmp_path: Path, workspace: Path,
                                                       data_dir: Path) -> None:
    write_job(workspace, "hello", "interpreter: bash\n", {"100_x.sh": "echo hello\n"})
    env = flwd_env(data_dir, XDG_CACHE_HOME=str(tmp_path / "cache"), FLWD_LOCAL="1")
    for _ in range(2):
        done = subprocess.run([*FLWD, "hello"], cwd=workspace, env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().endswith("hello")
    _version, entries = marshal.loads(_cache_file(tmp_path / "cache").read_bytes())
    assert len(entries) > 100  # flwd's, pydantic's and trio's dataclasses


def test_a_long_lived_process_lets_it_go_once_its_imports_are_done(tmp_path: Path) -> None:
    # What a server does once it serves: what it compiled is saved, then dataclasses
    # compile as without the cache (nothing held, nothing written any more).
    program = PROGRAM.replace("_codecache.save()", (
        "import dataclasses\n"
        "_codecache.close()\n"
        "@dataclass\n"
        "class Later:\n"
        "    value: int = 1\n"
        "assert Later() == Later(1) and 'exec' not in vars(dataclasses)\n"
        "assert not _codecache._loaded and not _codecache._added\n"
        "_codecache.save()\n"))
    environment = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    environment.pop("FLWD_CODE_CACHE", None)
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", program], cwd=REPO, env=environment,
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["compiled"] == 0  # saved by close() the first time


def test_a_server_keeps_its_own_file_and_a_warm_one_writes_nothing(tmp_path: Path,
                                                                    workspace: Path,
                                                                    data_dir: Path) -> None:
    from tests.conftest import start_server

    cache = tmp_path / "cache"
    # A server saves what it compiled once serving, and lets the cache go before it stops.
    assert start_server(workspace, data_dir, XDG_CACHE_HOME=str(cache)).stop() == 0
    [path] = (cache / "flwd").glob("code-serve-*.bin")
    assert not list((cache / "flwd").glob("code-cli-*"))  # a run's file is not the server's
    written = path.stat().st_mtime_ns
    # Had it kept less than it compiles (its HTTP stack's classes, imported after start-up
    # began), the next server would write the rest.
    assert start_server(workspace, data_dir, XDG_CACHE_HOME=str(cache)).stop() == 0
    assert path.stat().st_mtime_ns == written
