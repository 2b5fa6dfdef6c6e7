"""What a plain ``flwd JOB`` loads (issue 17, the standalone path).

A host job's run needs the engine, the planner and the Core DB; it must not pay for what
only a server, a source, a container step or a notification uses. Measured as the
completion tests do: the real console script with ``-X importtime``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.complete.conftest import FLWD_SCRIPT, imported
from tests.conftest import flwd_env, write_job

#: Modules a host run of a workspace job never imports (a server's, sources', containers',
#: the verbs' parser, the notification sinks').
NOT_ON_A_HOST_RUN = ("flwd.sources", "flwd.containers", "flwd.http", "flwd.hooks", "flwd.ui",
                     "quart", "hypercorn", "prometheus_client", "httpx", "httpcore",
                     "cyclopts", "smtplib", "rich", "psycopg", "flwd.store.postgres")
#: ...and what a run from the run index does not either: it builds none of pydantic's
#: schemas (the discovery that wrote the index validated its jobs), and the first one
#: built loads pydantic's plugin loader, which reads the installed packages' metadata.
NOT_ON_AN_INDEXED_RUN = ("pydantic.plugin._loader", "importlib.metadata", "zipfile", "csv",
                         # nor parses YAML: the notifier's read of flwd.yaml is in the index
                         "yaml",
                         # what only a mistake's hint or a checked mailbox needs
                         "difflib", "email")


def _run_demo(workspace: Path, data_dir: Path) -> set[str]:
    done = subprocess.run([str(FLWD_SCRIPT), "demo", "--name", "x"], cwd=workspace,
                          env=flwd_env(data_dir, PYTHONPROFILEIMPORTTIME="1"),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Hello, x!" in done.stdout
    return imported(done.stderr)


def _loaded(names: set[str], heavy: tuple[str, ...]) -> list[str]:
    return sorted(name for name in names
                  if any(name == module or name.startswith(module + ".") for module in heavy))


def test_a_host_run_loads_no_server_source_container_or_sink(workspace: Path,
                                                              data_dir: Path) -> None:
    # Dated back: an index is not written over files modified in the last two seconds.
    past = time.time() - 3600
    for folder, dirs, files in os.walk(workspace):
        for name in [*dirs, *files]:
            os.utime(Path(folder) / name, (past, past))
    # The first run creates the Core DB and discovers; the second reads the Core DB (the
    # sources' rows among it) and the run index the first one wrote.
    for _ in range(2):
        names = _run_demo(workspace, data_dir)
        assert _loaded(names, NOT_ON_A_HOST_RUN) == []
        assert "trio" in names  # the measurement saw the run's imports
    assert _loaded(names, NOT_ON_AN_INDEXED_RUN) == []


#: Run as ``python -c``: flwd's own entry point, saying which of the engine's modules were
#: loaded when each process keeper was started.
_KEEPER_WATCH = """\
import atexit, sys
seen = []
def hook(event, args):
    if event == "os.posix_spawn" and str(args[1][-1]).endswith("_keeper_main.py"):
        seen.append(sorted(name for name in ("trio", "flwd.engine", "flwd.plan")
                           if name in sys.modules))
sys.addaudithook(hook)
atexit.register(lambda: sys.stderr.write(f"keepers started with {seen}\\n"))
sys.argv = ["flwd", *sys.argv[1:]]
from flwd._entry import main
main()
"""


def test_a_host_run_starts_its_keeper_before_loading_the_engine(workspace: Path,
                                                                 data_dir: Path) -> None:
    # The keeper is a Python process the first host step waits for: started before
    # trio, the engine and the planner are loaded, it boots meanwhile (on another core).
    done = subprocess.run([sys.executable, "-c", _KEEPER_WATCH, "demo", "--name", "x"],
                          cwd=workspace, env=flwd_env(data_dir), capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Hello, x!" in done.stdout
    assert "keepers started with [[]]" in done.stderr  # one keeper, before any of them


#: Run as ``python -c``: flwd's entry point, counting the collector's runs from the moment
#: flwd.cli starts loading until the imports are frozen (a run's ``gc.freeze()``), and
#: whether it is on at the exit.
_GC_WATCH = """\
import atexit, gc, sys
loading, before = [], []
def hook(event, args):
    if event == "import" and args[0] == "flwd.cli":
        loading.append(True)
def watch(phase, info):
    if phase == "start" and loading and gc.get_freeze_count() == 0:
        before.append(info["generation"])
sys.addaudithook(hook)
gc.callbacks.append(watch)
atexit.register(lambda: sys.stderr.write(
    f"collections before the freeze: {len(before)}; on at the exit: {gc.isenabled()}\\n"))
sys.argv = ["flwd", *sys.argv[1:]]
from flwd._entry import main
main()
"""


def test_the_collector_is_off_while_a_command_loads(workspace: Path, data_dir: Path) -> None:
    # What the imports make lives as long as the process: collecting while they run
    # (a hundred times) frees next to nothing. A run turns it on again for the run...
    done = subprocess.run([sys.executable, "-c", _GC_WATCH, "demo", "--name", "x"],
                          cwd=workspace, env=flwd_env(data_dir), capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Hello, x!" in done.stdout
    assert "collections before the freeze: 0; on at the exit: True" in done.stderr
    # ...and a verb (a server may run for days) as soon as it is dispatched.
    done = subprocess.run([sys.executable, "-c", _GC_WATCH, ":jobs"], cwd=workspace,
                          env=flwd_env(data_dir), capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "on at the exit: True" in done.stderr


def _plugin_site(root: Path) -> Path:
    """A directory for PYTHONPATH holding an installed pydantic plugin that says when it is
    loaded (pydantic finds plugins through the ``pydantic`` entry points)."""
    site = root / "site"
    info = site / "flwd_test_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: flwd-test-plugin\n"
                                   "Version: 1.0\n")
    (info / "entry_points.txt").write_text("[pydantic]\nflwd_test = flwd_test_plugin:plugin\n")
    (site / "flwd_test_plugin.py").write_text(
        "import os, pathlib\n"
        "pathlib.Path(os.environ['PLUGIN_LOADED']).write_text('loaded')\n"
        "class _Plugin:\n"
        "    def new_schema_validator(self, *args, **kwargs):\n"
        "        return None, None, None\n"
        "plugin = _Plugin()\n")
    return site


def test_flwd_loads_no_pydantic_plugin_and_its_jobs_keep_theirs(tmp_path: Path,
                                                               data_dir: Path) -> None:
    site = _plugin_site(tmp_path)
    workspace = tmp_path / "ws"
    # It inherits the environment (the "disabled" profile lets it).
    write_job(workspace, "show", "job: {summary: prints the plugins setting}\n"
              "env_inheritance: true\n",
              {"100_main.sh": 'echo "plugins=${PYDANTIC_DISABLE_PLUGINS-unset}"\n'})
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    env = flwd_env(data_dir, PYTHONPATH=path, PLUGIN_LOADED=str(tmp_path / "loaded"))
    env.pop("PYDANTIC_DISABLE_PLUGINS", None)
    # The plugin is found when pydantic looks (the test's premise)...
    subprocess.run([sys.executable, "-c", "import pydantic\nclass M(pydantic.BaseModel): x: int"],
                   env=env, check=True, timeout=60)
    assert (tmp_path / "loaded").exists()
    (tmp_path / "loaded").unlink()
    # ...flwd does not look (its discovery builds models), and its job does not inherit that.
    done = subprocess.run([str(FLWD_SCRIPT), "show", "--profile", "disabled"], cwd=workspace,
                          env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "loaded").exists()
    assert "plugins=unset" in done.stdout
    # A setting of the user's own is the job's too.
    done = subprocess.run([str(FLWD_SCRIPT), "show", "--profile", "disabled"], cwd=workspace,
                          check=False,
                          env={**env, "PYDANTIC_DISABLE_PLUGINS": "flwd_test"},
                          capture_output=True, text=True, timeout=120)
    assert "plugins=flwd_test" in done.stdout


def test_version_and_usage_are_answered_before_flwd_cli_is_loaded(tmp_path: Path,
                                                                   data_dir: Path) -> None:
    from flwd import __version__
    from flwd.cli import USAGE

    for argv, expected in (([], USAGE), (["-h"], USAGE), (["--help"], USAGE),
                           (["help"], USAGE), (["--version"], f"flwd {__version__}\n")):
        done = subprocess.run([str(FLWD_SCRIPT), *argv], cwd=tmp_path,
                              env=flwd_env(data_dir, PYTHONPROFILEIMPORTTIME="1"),
                              capture_output=True, text=True, timeout=60, check=False)
        assert (done.returncode, done.stdout) == (0, expected), argv
        # flwd.cli imports the jobs' models: pydantic, ~200 ms of a line of text.
        assert _loaded(imported(done.stderr), ("flwd.cli", "pydantic", "trio")) == [], argv
    # A reader gone before the text is written: exit 1, quietly, as flwd.cli does.
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([str(FLWD_SCRIPT), "--help"], cwd=tmp_path, stdout=write,
                              env=flwd_env(data_dir), stderr=subprocess.PIPE, text=True,
                              timeout=60, check=False)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (1, "")
