"""The thin client: ``flwd JOB …`` handed to a local ``flwd :serve`` (stdlib only), and
``flwd :jobs``, ``:plan``, ``:runs``, ``:logs``, ``:cancel`` with it (:mod:`._verbs`).

When a server owns the data dir and serves this workspace, a job's command line is one
request on the server's Unix socket, and the run's events come back rendered here as
a local run renders them (:mod:`flwd.thin._run`). It is tried from the console entry
point before anything heavy is imported: nothing here imports trio, pydantic, yaml,
httpx or cyclopts (tests/e2e/test_thin_client.py checks it with ``-X importtime``).
Without a server (or with ``--local``, ``FLWD_LOCAL=1``) :func:`run` answers None and
the CLI runs the command in its own process, as before.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

from ._argv import job_invocation
from ._verbs import VerbLine, parse_verb


def run(args: Sequence[str]) -> int | None:
    """Hand the command line ``args`` (argv without the program) to a local server; its
    exit status, or None when this process is to run it (no server, another workspace,
    a command line only this process can run as meant).

    Raises:
        KeyboardInterrupt: Ctrl-C before the server started a run.
    """
    invocation = job_invocation(args, os.environ)
    if invocation is None:
        return None
    # Imported here: the few other command lines pay for nothing but the argv check.
    from flwd.errors import FlwdError
    from flwd.settings import resolve_settings

    from ._locate import server_socket

    try:
        settings = resolve_settings(scripts=invocation.scripts, data_dir=invocation.data_dir)
    except FlwdError:
        return None  # the CLI says what is wrong, as it always did
    socket_path = server_socket(settings.data_dir, settings.scripts_root)
    if socket_path is None:
        return None
    from ._run import ThinRun

    return ThinRun(socket_path, invocation.words, settings.scripts_root,
                   verb=invocation.verb is not None).run()


def cancel_through_server(data_dir: Path, run_id: str, server_pid: int) -> dict[str, Any] | None:
    """Cancel ``run_id``, a run of the server ``server_pid`` owning ``data_dir``, through its
    local socket (as ``flwd :cancel`` does a CLI's run: a thin client's run is cancelled
    by its client); the run's document, or None when that server cannot be reached so.
    """
    import json
    from pathlib import Path

    from flwd.daemon import read_owner

    from ._http import ProtocolError, request

    owner = read_owner(data_dir)
    if owner is None or owner.pid != server_pid or owner.socket is None:
        return None
    try:
        status, body = request(Path(owner.socket), "POST", f"/runs/{run_id}:cancel")
        document = json.loads(body)
    except (OSError, ProtocolError, ValueError):
        return None
    return document if status in (200, 202) and isinstance(document, dict) else None


__all__ = ["VerbLine", "cancel_through_server", "parse_verb", "run"]
