"""Removing containers flwd left behind (blocking; start-up and recovery only).

Every container flwd starts carries the label ``flwd.run=<run id>``. A server
or CLI that dies (SIGKILL, power loss) leaves its containers running; the next
flwd process that recovers the run removes them.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence

from ._argv import RUN_LABEL
from ._ps import labels, names, ps_argv, ps_entries
from ._runtime import Runtime, installed_runtimes

_log = logging.getLogger("flwd.containers")
_TIMEOUT = 30.0


def _call(argv: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=_TIMEOUT, env=dict(env), check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _log.warning("container runtime call failed: %s: %s", " ".join(argv[:3]), exc)
        return None


def flwd_containers(runtime: Runtime, env: Mapping[str, str] | None = None
                    ) -> list[tuple[str, str]]:
    """(container name, run id) of every container labelled by flwd, running or not."""
    env = os.environ if env is None else env
    done = _call(ps_argv(runtime.path, runtime.is_podman, RUN_LABEL), env)
    if done is None or done.returncode != 0:
        return []
    found = []
    for entry in ps_entries(done.stdout):
        run_id = labels(entry).get(RUN_LABEL)
        for name in names(entry)[:1]:
            if run_id:
                found.append((name, run_id))
    return found


def reap_orphans(runtime: Runtime, is_live: Callable[[str], bool],
                 env: Mapping[str, str] | None = None) -> list[str]:
    """Remove (``rm --force``) every flwd container whose run is not live; returns their names."""
    env = os.environ if env is None else env
    orphans = [name for name, run_id in flwd_containers(runtime, env) if not is_live(run_id)]
    if orphans:
        argv = [runtime.path, "rm", "--force", *(["--ignore"] if runtime.is_podman else []),
                *orphans]
        done = _call(argv, env)
        if done is None or done.returncode != 0:
            _log.warning("could not remove orphaned containers %s: %s", orphans,
                         done.stderr.strip() if done else "runtime call failed")
        else:
            _log.info("removed orphaned containers %s", orphans)
    return orphans


def reap_run_containers(run_ids: Sequence[str], env: Mapping[str, str] | None = None
                        ) -> list[str]:
    """Remove the containers of ``run_ids`` (runs just found orphaned) from every runtime
    installed: the dead process may have used another one than this one would."""
    if not run_ids:
        return []
    wanted = set(run_ids)
    removed: list[str] = []
    for runtime in installed_runtimes(env):
        removed += reap_orphans(runtime, lambda run_id: run_id not in wanted, env)
    return removed
