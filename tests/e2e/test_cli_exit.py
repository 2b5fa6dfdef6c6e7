"""``flwd JOB`` leaves without the interpreter's teardown (issue 17): nothing is lost.

The process ends with ``os._exit`` once the command is done (flwd._entry.leave). What
the teardown would have done that matters must have happened first: every event of the
run committed to the Core DB, all of the output written (to a pipe too), the exit
callbacks run (here one registered by a ``sitecustomize``, as coverage does). What it
skips is freeing the objects one by one: an object of the ``sitecustomize`` that says when
it is freed is never freed.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from flwd.events import RUN_FINISH, STEP_LOG
from flwd.store import SqliteStore
from tests.complete.conftest import FLWD_SCRIPT
from tests.conftest import flwd_env, write_job

LINES = 20_000

#: Registers an exit callback in every Python process of the test (flwd's included).
SITECUSTOMIZE = """\
import atexit, os, sys

def _said_goodbye():
    with open(os.environ["GOODBYE_FILE"], "a") as out:
        out.write(" ".join(sys.argv[1:]) + "\\n")

class _Freed:
    def __init__(self, path, write=open):
        self.path, self.write = path, write

    def __del__(self):
        with self.write(self.path, "a") as out:
            out.write("freed\\n")

if "GOODBYE_FILE" in os.environ:
    atexit.register(_said_goodbye)
    _kept = _Freed(os.environ["GOODBYE_FILE"] + ".freed")
"""


def _run(args: list[str], workspace: Path, data_dir: Path, tmp_path: Path
         ) -> subprocess.CompletedProcess[bytes]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    env = flwd_env(data_dir, PYTHONPATH=path, GOODBYE_FILE=str(tmp_path / "goodbye"))
    return subprocess.run([str(FLWD_SCRIPT), *args], cwd=workspace, env=env,
                          capture_output=True, timeout=120, check=False)


def test_every_event_and_line_is_kept_and_exit_callbacks_run(tmp_path: Path,
                                                             data_dir: Path) -> None:
    workspace = tmp_path / "ws"
    write_job(workspace, "chatty", "job: {summary: many lines then a failure}\n",
              {"100_main.sh": f"seq 1 {LINES}\necho to-stderr >&2\nexit 3\n"})
    done = _run(["chatty"], workspace, data_dir, tmp_path)
    # Exit status and output as before: every line reached the pipe.
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stdout.decode().splitlines()[:LINES] == [str(n) for n in range(1, LINES + 1)]
    assert b"to-stderr" in done.stdout + done.stderr
    # The exit callback ran (once) in the flwd process; the teardown did not.
    assert (tmp_path / "goodbye").read_text().splitlines() == ["chatty"]
    assert not (tmp_path / "goodbye.freed").exists()
    # Every event is in the Core DB, in order, ending with run.finish.
    store = SqliteStore(data_dir / "flwd.db")
    [run] = store.list_runs()
    assert run.status == "failed"
    records = []
    after = 0
    while batch := store.read_events(run.id, after=after, limit=500):
        records += batch
        after = batch[-1].seq
    assert records[-1].type == RUN_FINISH
    logs = [record for record in records if record.type == STEP_LOG]
    # stdout and stderr are two pipes: their lines interleave as they are read.
    stdout = b"".join(r.text() for r in logs if r.data.get("channel") == "stdout")
    stderr = b"".join(r.text() for r in logs if r.data.get("channel") == "stderr")
    assert stdout.splitlines() == [str(n).encode() for n in range(1, LINES + 1)]
    assert stderr.splitlines() == [b"to-stderr"]
