"""Is there a local server to hand a command line to? (stdlib only; a few stats and a
small read)

Where the workspace and the data dir are is found as :func:`flwd.settings.resolve_settings`
finds them (the same flags, variables and defaults, on ``os.path`` rather than
``pathlib``: the thin client imports nothing it can do without, and tests check both
agree). A server that owns the data dir describes itself in ``<data dir>/serve.json``
(:mod:`flwd.daemon`): its pid and start time, the scripts root it serves, its Unix
socket and the client protocol it speaks there. It is used only when all of them say
so: the process still runs (the same one: its start time), it serves this workspace's
``scripts/``, and speaks this client's protocol. Anything else — no description, a
stale one, another workspace, another version, a setting the CLI would refuse — means
the command runs here (and the CLI says what it says of it). The server checks the
workspace again when it gets the request (the authority: a description may be
replaced between the read and the connect).
"""

from __future__ import annotations

import os

from ._frames import CLIENT_PROTOCOL
from ._json import loads

TYPE_CHECKING = False  # not typing's: the thin client does not import typing
if TYPE_CHECKING:
    from collections.abc import Mapping

#: serve.json's name in the data dir, and the most of it that is read
#: (flwd.daemon.OWNER_FILE and its reader's bound).
OWNER_FILE = "serve.json"
MAX_OWNER_BYTES = 64 * 1024


def scripts_root(scripts: str | None, env: Mapping[str, str], cwd: str) -> str | None:
    """The scripts root ``resolve_settings`` finds (``--scripts``, ``FLWD_SCRIPTS``, else
    ``scripts/`` in ``cwd`` or its nearest parent), or None when it would refuse."""
    explicit = scripts or env.get("FLWD_SCRIPTS")
    if explicit:
        # Joined, never normalised: ``link/..`` is the kernel's to resolve (pathlib's
        # ``absolute()`` does not collapse it either).
        root = os.path.join(cwd, os.path.expanduser(explicit))
        return root if os.path.isdir(root) else None
    folder = cwd
    while True:
        candidate = os.path.join(folder, "scripts")
        if os.path.isdir(candidate):
            return candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def data_dir(flag: str | None, env: Mapping[str, str]) -> str:
    """``--data-dir`` > ``FLWD_DATA_DIR`` > ``DATA_DIR`` > ``$XDG_DATA_HOME/flwd`` >
    ``~/.local/share/flwd`` (``flwd.settings.resolve_data_dir``)."""
    for value in (flag, env.get("FLWD_DATA_DIR"), env.get("DATA_DIR")):
        if value:
            return _absolute(os.path.expanduser(value))
    xdg = env.get("XDG_DATA_HOME")
    if xdg:
        return os.path.join(_absolute(os.path.expanduser(xdg)), "flwd")
    return os.path.join(os.path.expanduser("~"), ".local", "share", "flwd")


def _absolute(path: str) -> str:
    # As pathlib's absolute(): the working directory in front, ``..`` left alone.
    return path if os.path.isabs(path) else os.path.join(os.getcwd(), path)


def grace_ok(env: Mapping[str, str]) -> bool:
    """``FLWD_GRACE`` is unset or what ``flwd.settings.resolve_grace`` takes."""
    text = env.get("FLWD_GRACE")
    if not text:
        return True
    try:
        return 0 <= float(text) <= 3600
    except ValueError:
        return False


def live_server(data: str | os.PathLike[str]) -> dict[str, object] | None:
    """What the server owning the data dir ``data`` says of itself in ``serve.json`` —
    with its ``pid`` (an int), its ``socket`` and the ``protocol`` this client speaks —
    if that process still runs; None otherwise."""
    try:
        with open(os.path.join(data, OWNER_FILE), "rb") as f:
            raw = f.read(MAX_OWNER_BYTES + 1)
        owner = loads(raw) if len(raw) <= MAX_OWNER_BYTES else None
    except (OSError, ValueError):
        return None
    if not isinstance(owner, dict) or owner.get("kind") != "serve":
        return None
    pid, start = owner.get("pid"), owner.get("start")
    if (type(pid) is not int or pid <= 0 or not (start is None or type(start) is int)
            or not isinstance(owner.get("socket"), str)
            or owner.get("protocol") != CLIENT_PROTOCOL):
        return None
    started = start_time(pid)
    if started is None or (start is not None and started != start):
        return None
    return owner


def server_socket(data: str | os.PathLike[str], scripts: str | os.PathLike[str]) -> str | None:
    """The socket of the server of the data dir ``data`` that serves the scripts root
    ``scripts`` and speaks this client's protocol; None when there is none."""
    owner = live_server(data)
    if owner is None:
        return None
    served = owner.get("scripts_root")
    try:
        if not isinstance(served, str) or not os.path.samefile(served, scripts):
            return None
    except OSError:
        return None
    return str(owner["socket"])


def start_time(pid: int) -> int | None:
    """When ``pid`` started (field 22 of ``/proc/<pid>/stat``), None when it is gone or a
    zombie (``flwd.daemon.start_time``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2:].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    try:
        return int(fields[19])
    except ValueError:
        return None
