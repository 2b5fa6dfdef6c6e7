"""What a plain ``flwd JOB`` loads (issue 17, the standalone path).

A host job's run needs the engine, the planner and the Core DB; it must not pay for what
only a server, a source, a container step or a notification uses. Measured as the
completion tests do: the real console script with ``-X importtime``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.complete.conftest import FLWD_SCRIPT, imported
from tests.conftest import flwd_env

#: Modules a host run of a workspace job never imports (a server's, sources', containers',
#: the verbs' parser, the notification sinks').
NOT_ON_A_HOST_RUN = ("flwd.sources", "flwd.containers", "flwd.http", "flwd.hooks", "flwd.ui",
                     "quart", "hypercorn", "prometheus_client", "httpx", "httpcore",
                     "cyclopts", "smtplib", "rich")


def _run_demo(workspace: Path, data_dir: Path) -> set[str]:
    done = subprocess.run([str(FLWD_SCRIPT), "demo", "--name", "x"], cwd=workspace,
                          env=flwd_env(data_dir, PYTHONPROFILEIMPORTTIME="1"),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Hello, x!" in done.stdout
    return imported(done.stderr)


def test_a_host_run_loads_no_server_source_container_or_sink(workspace: Path,
                                                              data_dir: Path) -> None:
    # The first run creates the Core DB; the second reads it (the sources' rows among it).
    for _ in range(2):
        names = _run_demo(workspace, data_dir)
        loaded = sorted(name for name in names
                        if any(name == heavy or name.startswith(heavy + ".")
                               for heavy in NOT_ON_A_HOST_RUN))
        assert loaded == [], loaded
        assert "trio" in names  # the measurement saw the run's imports
