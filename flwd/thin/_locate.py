"""Is there a local server to hand a command line to? (stdlib only; a stat and a small read)

A server that owns the data dir describes itself in ``<data dir>/serve.json``
(:mod:`flwd.daemon`): its pid and start time, the scripts root it serves, its Unix
socket and the client protocol it speaks there. It is used only when all of them say
so: the process still runs (the same one: its start time), it serves this workspace's
``scripts/``, and speaks this client's protocol. Anything else — no description, a
stale one, another workspace, another version — means the command runs here. The
server checks the workspace again when it gets the request (the authority: a
description may be replaced between the read and the connect).
"""

from __future__ import annotations

import os
from pathlib import Path

from flwd.daemon import CLIENT_PROTOCOL, read_owner


def server_socket(data_dir: Path, scripts_root: Path) -> Path | None:
    """The socket of the server of ``data_dir`` that serves ``scripts_root`` and speaks
    this client's protocol; None when there is none."""
    owner = read_owner(data_dir)
    if (owner is None or owner.kind != "serve" or owner.socket is None
            or owner.protocol != CLIENT_PROTOCOL or owner.scripts_root is None):
        return None
    try:
        if not os.path.samefile(owner.scripts_root, scripts_root):
            return None
    except OSError:
        return None
    return Path(owner.socket)
