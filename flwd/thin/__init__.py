"""The thin client: ``flwd JOB …`` handed to a local ``flwd :serve`` (stdlib only), and
``flwd :jobs``, ``:plan``, ``:runs``, ``:logs``, ``:cancel`` with it (:mod:`._verbs`).

When a server owns the data dir and serves this workspace, a job's command line is one
request on the server's Unix socket, and what it prints comes back rendered by the
server as a local run renders it (:mod:`flwd.thin._frames`, :mod:`flwd.thin._run`). It
is tried from the console entry point before anything else is imported: nothing here
imports trio, pydantic, yaml, httpx or cyclopts — nor ``typing``, ``dataclasses``,
``pathlib``, ``json``, ``socket`` or ``signal``, whose imports would cost more than the
rest of the command (tests/e2e/test_thin_client.py checks it with ``-X importtime``).
Without a server (or with ``--local``, ``FLWD_LOCAL=1``) :func:`run` answers None and
the CLI runs the command in its own process, as before.
"""

from __future__ import annotations

import os

from ._argv import job_invocation
from ._frames import CLIENT_PROTOCOL, MEDIA_TYPE, FrameReader, frame
from ._verbs import VerbLine, parse_verb

TYPE_CHECKING = False  # not typing's: the thin client does not import typing
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Any


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
    from . import _locate

    try:
        cwd = os.getcwd()
    except OSError:
        return None  # the CLI says what is wrong, as it always did
    scripts_root = _locate.scripts_root(invocation.scripts, os.environ, cwd)
    if scripts_root is None or not _locate.grace_ok(os.environ):
        return None
    socket_path = _locate.server_socket(_locate.data_dir(invocation.data_dir, os.environ),
                                        scripts_root)
    if socket_path is None:
        return None
    from ._run import ThinRun

    return ThinRun(socket_path, invocation.words, scripts_root,
                   verb=invocation.verb is not None).run()


def cancel_through_server(data_dir: Path, run_id: str, server_pid: int) -> dict[str, Any] | None:
    """Cancel ``run_id``, a run of the server ``server_pid`` owning ``data_dir``, through its
    local socket (as ``flwd :cancel`` does a CLI's run: a thin client's run is cancelled
    by its client); the run's document, or None when that server cannot be reached so.
    """
    from ._http import ProtocolError, request
    from ._json import loads
    from ._locate import live_server

    owner = live_server(data_dir)
    if owner is None or owner["pid"] != server_pid:
        return None
    try:
        status, body = request(str(owner["socket"]), "POST", f"/runs/{run_id}:cancel")
        document = loads(body)
    except (OSError, ProtocolError, ValueError):
        return None
    return document if status in (200, 202) and isinstance(document, dict) else None


__all__ = ["CLIENT_PROTOCOL", "MEDIA_TYPE", "FrameReader", "VerbLine", "cancel_through_server",
           "frame", "parse_verb", "run"]
