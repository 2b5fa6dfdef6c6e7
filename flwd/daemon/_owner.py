"""Who owns a data dir, and what a command it refuses is told (sans-IO)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from flwd.errors import UsageError

OwnerKind = Literal["serve", "sources"]


class DataDirBusy(UsageError):
    """Another flwd process owns the data dir (see :mod:`flwd.daemon`); exit status 2."""


@dataclass(frozen=True, slots=True)
class Owner:
    """The process holding ``<data>/serve.lock``, as it describes itself in ``serve.json``."""

    kind: OwnerKind
    pid: int
    #: The process's start time (clock ticks since boot): tells a reused pid apart.
    start: int | None = None
    #: serve: the URL a client on this host reaches it at.
    url: str | None = None
    #: serve: the scripts root it serves.
    scripts_root: str | None = None
    #: sources: the command, e.g. ``:sources refresh tools``.
    command: str | None = None
    #: serve: its Unix socket (``<data dir>/serve.sock``) and the version of the thin
    #: client's protocol it speaks there (``flwd.daemon.CLIENT_PROTOCOL``).
    socket: str | None = None
    protocol: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in (
            ("kind", self.kind), ("pid", self.pid), ("start", self.start), ("url", self.url),
            ("scripts_root", self.scripts_root), ("command", self.command),
            ("socket", self.socket), ("protocol", self.protocol))
            if value is not None}

    @classmethod
    def from_json(cls, value: object) -> Owner | None:
        """The owner a ``serve.json`` document names; None when it is not one."""
        if not isinstance(value, dict):
            return None
        kind, pid, start = value.get("kind"), value.get("pid"), value.get("start")
        if kind not in ("serve", "sources") or type(pid) is not int or pid <= 0 or \
                not (start is None or type(start) is int):
            return None
        texts = {key: value.get(key) for key in ("url", "scripts_root", "command", "socket")}
        if any(text is not None and not isinstance(text, str) for text in texts.values()):
            return None
        protocol = value.get("protocol")
        if not (protocol is None or type(protocol) is int):
            return None
        return cls(kind, pid, start, texts["url"], texts["scripts_root"], texts["command"],
                   texts["socket"], protocol)

    def describe(self) -> str:
        if self.kind == "serve":
            return f"flwd :serve (pid {self.pid})"
        return f"flwd {self.command or ':sources'} (pid {self.pid})"


def refusal(owner: Owner | None, wanted: Sequence[str]) -> DataDirBusy:
    """What a command (``wanted``: its words, e.g. ``[":sources", "refresh", "tools"]``)
    refused because ``owner`` holds the data dir is told: one line, and what to do.

    ``owner`` is None when the holder has not said who it is (yet), or named a
    process that is gone (the lock was taken over meanwhile).
    """
    serving = wanted[:1] == [":serve"]
    if owner is None:
        return DataDirBusy(
            "another flwd process (a server starting, or a :sources command) holds this "
            "data dir; try again in a moment" + (
                "" if serving else ", or change sources through a running server with "
                                    "flwd --server URL " + shlex.join(wanted)))
    if owner.kind == "sources":
        then = "start the server" if serving else "try again"
        return DataDirBusy(f"{owner.describe()} is changing the sources of this data dir; "
                           f"{then} when it is done")
    if serving:
        return DataDirBusy(f"{owner.describe()} already serves this data dir"
                           f"{f' at {owner.url}' if owner.url else ''}; stop it first, or "
                           "give this server another one (flwd --data-dir DIR :serve)")
    url = owner.url or "URL"
    return DataDirBusy(f"{owner.describe()} is using this data dir; change sources through "
                       f"it: {shlex.join(['flwd', '--server', url, *wanted])}")


def client_url(bound: str) -> str:
    """The URL a client on this host uses for a server bound at ``bound``: a wildcard
    address (``0.0.0.0``, ``::``) is reached through loopback."""
    try:
        parts = urlsplit(bound)
        host, port = parts.hostname, parts.port
    except ValueError:
        return bound
    loopback = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host or "")
    if loopback is None:
        return bound
    return urlunsplit((parts.scheme, f"{loopback}:{port}" if port else loopback,
                       parts.path, parts.query, parts.fragment))
