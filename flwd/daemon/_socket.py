"""A server's Unix socket in its data dir: its name, the protocol spoken there, and the
address a process binds or connects to (stdlib only: the thin client imports it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from flwd.thin import CLIENT_PROTOCOL as _THIN_PROTOCOL

#: The name of a server's Unix socket in its data dir.
LOCAL_SOCKET: Final = "serve.sock"
#: The version of what the thin client and a server say to each other on that socket
#: (the ``words`` form of ``POST /runs``): flwd.thin's, where the protocol is.
CLIENT_PROTOCOL: Final = _THIN_PROTOCOL
#: The longest path a ``sockaddr_un`` holds (108 bytes with its NUL, on Linux).
_MAX_PATH: Final = 107


def socket_address(path: Path, directory_fd: int | None = None) -> str:
    """What to bind or connect to for the socket ``path``: the path itself, or — longer
    than a ``sockaddr_un`` holds — the same name through ``/proc/self/fd`` of its folder,
    open as ``directory_fd`` (the kernel resolves it when binding or connecting)."""
    text = os.fsdecode(path)
    if len(os.fsencode(text)) <= _MAX_PATH or directory_fd is None:
        return text
    return f"/proc/self/fd/{directory_fd}/{path.name}"
