"""The run index of ``flwd JOB`` (flwd/cli/_run_index.py): used while it says what discovery
would, and never to run the wrong thing (issue 17).

Whether a run used the index is observed, not guessed: a job is *planted* in the index
(the same job, with another greeting in its env) while its stamp stays fresh. A run
that prints the planted greeting read the index; one that prints the config's
discovered the workspace. Every file of the workspace is dated an hour back first: an
index is not written over files modified in the last two seconds.
"""

from __future__ import annotations

import json
import marshal
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flwd.cli import _run_index
from flwd.complete import cache_path
from tests.conftest import flwd_env, run_cli, write_job

DEMO = """\
job: {summary: greets}
env: {GREETING: hello}
argspec:
  args:
    - {name: name, type: string, required: true}
    - {name: times, type: integer, minimum: 1}
"""
GREET = 'echo "$GREETING $ARG_NAME"\n'


def age(root: Path) -> None:
    """Date every file and directory under ``root`` an hour back."""
    past = time.time() - 3600
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.utime(Path(folder) / name, (past, past))
    os.utime(root, (past, past))


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write_job(root, "greet", DEMO, {"100_main.sh": GREET})
    write_job(root, "tools/lint", "job: {summary: lints}\n", {"100_main.sh": "echo lint\n"})
    (root / "scripts" / "flwd.yaml").write_text(
        "aliases:\n  - {from: greet, to: hi, description: say hi}\n")
    age(root / "scripts")
    return root


def run(ws: Path, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(list(args), cwd=ws, data_dir=data_dir)


def index_path(ws: Path, data_dir: Path) -> Path:
    return Path(cache_path(str(data_dir), str(ws / "scripts"), folder=_run_index.FOLDER))


def plant(ws: Path, data_dir: Path, greeting: str = "planted") -> None:
    """Give the indexed ``greet`` another greeting, its stamp untouched."""
    path = index_path(ws, data_dir)
    index = marshal.loads(path.read_bytes())
    job = pickle.loads(index["jobs"]["greet"])
    config = job.config.model_copy(update={"env": {"GREETING": greeting}})
    index["jobs"]["greet"] = pickle.dumps(type(job)(**{**job.__dict__, "config": config}))
    path.write_bytes(marshal.dumps(index))


def indexed(ws: Path, data_dir: Path) -> None:
    """Run once so that the index is written, and plant a greeting in it."""
    done = run(ws, data_dir, "greet", "--name", "a")
    assert done.stdout == "hello a\n", done.stderr
    assert index_path(ws, data_dir).is_file()
    plant(ws, data_dir)


def test_a_fresh_index_is_used_for_jobs_and_aliases(ws: Path, data_dir: Path) -> None:
    indexed(ws, data_dir)
    assert run(ws, data_dir, "greet", "--name", "b").stdout == "planted b\n"
    assert run(ws, data_dir, "hi", "--name", "c").stdout == "planted c\n"
    assert run(ws, data_dir, "tools", "lint").stdout == "lint\n"


#: Run as ``python -c``: flwd's entry point, saying at its exit whether the validators of
#: the config's models were built (pydantic builds a deferred one at its first use).
_BUILT = """\
import atexit, sys
def built():
    from flwd.jobs import Arg, JobConfig, Step
    done = [model.__pydantic_complete__ for model in (JobConfig, Arg, Step)]
    sys.stderr.write(f"validators built: {done}\\n")
    # What building a first one loads (pydantic's plugin loader reads packages' metadata).
    loaded = [name for name in ("pydantic.plugin._loader", "importlib.metadata")
              if name in sys.modules]
    sys.stderr.write(f"loaded for building: {loaded}\\n")
atexit.register(built)
sys.argv = ["flwd", *sys.argv[1:]]
from flwd._entry import main
main()
"""


def test_a_run_from_the_index_builds_no_validator(ws: Path, data_dir: Path) -> None:
    # Its jobs were validated by the discovery that wrote it: building the validators
    # (a third of the cost of loading the models) would be for nothing.
    indexed(ws, data_dir)

    def run_watched(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", _BUILT, "greet", "--name", name], cwd=ws,
                              env=flwd_env(data_dir), capture_output=True, text=True,
                              timeout=60, check=False)

    done = run_watched("i")
    assert done.stdout == "planted i\n", done.stderr  # the index answered
    assert "validators built: [False, False, False]" in done.stderr
    assert "loaded for building: []" in done.stderr  # nor built anything else
    # Discovery validates the configs: then the config's is built (its members' inside it).
    (ws / "scripts/greet/config.d/config.yaml").write_text(DEMO.replace("hello", "howdy"))
    done = run_watched("j")
    assert done.stdout == "howdy j\n", done.stderr
    assert "validators built: [True, " in done.stderr



def test_the_workspace_notify_rules_apply_to_a_run_from_the_index(ws: Path, data_dir: Path,
                                                                  tmp_path: Path) -> None:
    # The index keeps the notifier's read of flwd.yaml: a run from it parses no YAML, and
    # its notifier still applies the good rules and says what is wrong with the others.
    out = tmp_path / "note.json"
    (ws / "scripts" / "flwd.yaml").write_text(
        "aliases:\n  - {from: greet, to: hi, description: say hi}\n"
        "notify:\n"
        f"  - {{on: [success], command: [sh, -c, 'cat > \"$0\"', '{out}']}}\n"
        "  - {on: [nope], command: [x]}\n")
    age(ws / "scripts")
    indexed(ws, data_dir)
    out.unlink()
    done = run(ws, data_dir, "greet", "--name", "k")
    assert done.stdout == "planted k\n", done.stderr  # the index answered
    assert json.loads(out.read_text())["event"] == "success"
    assert "notify[1].on[0]: 'nope' is not one of" in done.stderr


def test_an_edited_config_runs_as_edited(ws: Path, data_dir: Path) -> None:
    indexed(ws, data_dir)
    config = ws / "scripts/greet/config.d/config.yaml"
    # Same size: only the modification time tells.
    config.write_text(DEMO.replace("hello", "howdy"))
    assert run(ws, data_dir, "greet", "--name", "d").stdout == "howdy d\n"


def test_a_file_modified_just_now_is_not_trusted_to_its_stamp(ws: Path, data_dir: Path) -> None:
    config = ws / "scripts/greet/config.d/config.yaml"
    config.write_text(DEMO)  # modified now
    assert run(ws, data_dir, "greet", "--name", "e").stdout == "hello e\n"
    assert not index_path(ws, data_dir).exists()


@pytest.mark.parametrize("content", [b"\x00garbage", marshal.dumps([1, 2]),
                                     marshal.dumps({"format": _run_index.FORMAT})])
def test_a_corrupt_index_falls_back(ws: Path, data_dir: Path, content: bytes) -> None:
    indexed(ws, data_dir)
    index_path(ws, data_dir).write_bytes(content)
    assert run(ws, data_dir, "greet", "--name", "f").stdout == "hello f\n"


def test_a_corrupt_job_falls_back(ws: Path, data_dir: Path) -> None:
    indexed(ws, data_dir)
    path = index_path(ws, data_dir)
    index = marshal.loads(path.read_bytes())
    index["jobs"]["greet"] = index["jobs"]["greet"][:-20]
    path.write_bytes(marshal.dumps(index))
    assert run(ws, data_dir, "greet", "--name", "g").stdout == "hello g\n"


def test_an_index_of_other_code_falls_back(ws: Path, data_dir: Path) -> None:
    indexed(ws, data_dir)
    path = index_path(ws, data_dir)
    index = marshal.loads(path.read_bytes())
    for key, value in (("code", index["code"] + "x"), ("pydantic", "0.0")):
        path.write_bytes(marshal.dumps({**index, key: value}))
        assert run(ws, data_dir, "greet", "--name", "h").stdout == "hello h\n"


def test_a_job_added_later_is_found(ws: Path, data_dir: Path) -> None:
    indexed(ws, data_dir)
    write_job(ws, "greet/loud", "job: {summary: louder}\n", {"100_main.sh": "echo LOUD\n"})
    # Longer words name the new job, not greet with an extra word.
    assert run(ws, data_dir, "greet", "loud").stdout == "LOUD\n"


def test_a_removed_job_is_not_run(ws: Path, data_dir: Path, tmp_path: Path) -> None:
    indexed(ws, data_dir)
    (ws / "scripts/greet/config.d/config.yaml").unlink()
    with_index = run(ws, data_dir, "greet", "--name", "i")
    without = run(ws, tmp_path / "fresh-data", "greet", "--name", "i")
    assert with_index.returncode == without.returncode == 2
    assert with_index.stderr == without.stderr and "unknown job 'greet'" in with_index.stderr


def test_an_alias_pointed_elsewhere_runs_its_new_target(ws: Path, data_dir: Path) -> None:
    indexed(ws, data_dir)
    (ws / "scripts/flwd.yaml").write_text("aliases:\n  - {from: tools/lint, to: hi}\n")
    assert run(ws, data_dir, "hi").stdout == "lint\n"


def test_an_id_claimed_twice_later_is_refused(ws: Path, data_dir: Path) -> None:
    indexed(ws, data_dir)
    write_job(ws, "other", "job: {id: greet}\n", {"100_main.sh": "echo other\n"})
    done = run(ws, data_dir, "greet", "--name", "j")
    assert done.returncode == 2 and "ambiguous" in done.stderr and not done.stdout


def test_with_sources_the_workspace_is_discovered(ws: Path, data_dir: Path,
                                                   tmp_path: Path) -> None:
    indexed(ws, data_dir)
    extra = tmp_path / "extra"
    write_job(extra, "hello", "job: {summary: from a source}\n", {"100_main.sh": "echo src\n"})
    added = run(ws, data_dir, ":sources", "add", "--type", "local", "--ref",
                str(extra / "scripts"), "--name", "greet", "--allow-path", str(tmp_path))
    assert added.returncode == 0, added.stderr
    assert run(ws, data_dir, "greet", "--name", "k").stdout == "hello k\n"
    assert run(ws, data_dir, "greet", "hello").stdout == "src\n"


@pytest.mark.parametrize("args", [
    ["greet"], ["greet", "--name"], ["greet", "--name", "x", "--times", "0"],
    ["greet", "--nmae", "x"], ["greet", "extra", "--name", "x"], ["greet", "--help"],
    ["hi", "--help"], ["gret"], ["tools"], ["tools", "lint", "--x"],
])
def test_answers_are_the_same_with_and_without_the_index(ws: Path, data_dir: Path,
                                                         tmp_path: Path,
                                                         args: list[str]) -> None:
    assert run(ws, data_dir, "greet", "--name", "a").returncode == 0
    assert index_path(ws, data_dir).is_file()
    with_index = run(ws, data_dir, *args)
    index_path(ws, data_dir).unlink()
    without = run(ws, tmp_path / "other-data", *args)
    assert (with_index.returncode, with_index.stdout, with_index.stderr) == (
        without.returncode, without.stdout, without.stderr)
