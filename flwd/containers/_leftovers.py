"""Preflight probes left behind by a flwd process that died, and whose they are (blocking).

The preflight's probe container lives for a fraction of a second (``_probe``); a
flwd killed in between (SIGKILL, OOM, power loss) leaves it — and its rootfs folder
— behind, for good: nothing else ever removes a container that is not a run's. So
each probe carries its owner's identity (pid, start time, boot, host: a pid alone
may have been reused), and each preflight lists the probes while making its own
(``ps`` runs alongside ``create``: the check waits no longer) and removes, with its
own probe, those whose owner is gone.

A probe of a live process is never touched, nor one made on another host (a
runtime shared through ``CONTAINER_HOST``: that host's processes are not ours to
judge), nor one without an owner label (it is not known whose it is).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from flwd.execute import boot_id, owner_identity, process_alive

from ._ps import labels, names, ps_argv, ps_entries

#: Every probe container carries it (``flwd.preflight=1``).
PROBE_LABEL = "flwd.preflight"
#: ``PID:START:BOOT:HOST`` of the process that made the probe.
OWNER_LABEL = "flwd.preflight.owner"
#: A probe's name, which is also its rootfs folder's name in the temporary directory.
_PROBE_NAME = re.compile(r"^flwd-preflight-[0-9]+-[0-9a-f]{8}$")
#: The listing runs alongside the probe; one that does not answer in this time is dropped.
_LIST_TIMEOUT = 30.0


def owner_label() -> str:
    """This process as the owner of a probe (``OWNER_LABEL``'s value)."""
    pid, start, host = owner_identity()
    return f"{pid}:{'' if start is None else start}:{boot_id()}:{host}"


def owner_gone(value: str) -> bool:
    """Whether the process an ``OWNER_LABEL`` value names has exited (False when unsure)."""
    pid, _, rest = value.partition(":")
    start, _, rest = rest.partition(":")
    boot, _, host = rest.partition(":")
    if not pid.isdigit() or not (start == "" or start.isdigit()) or host != socket.gethostname():
        return False
    if boot and boot != boot_id():
        return True  # made before this boot: that process is gone
    return not process_alive(int(pid), int(start) if start else None)


def probe_folder(name: str) -> Path:
    """The rootfs folder of the probe called ``name``."""
    return Path(tempfile.gettempdir()) / name


def list_probes(path: str, env: Mapping[str, str]) -> subprocess.Popen[str] | None:
    """Start listing the probe containers (``podman ps``); :func:`dead_probes` reads it."""
    try:
        return subprocess.Popen(ps_argv(path, True, PROBE_LABEL), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                errors="replace", env=dict(env))
    except OSError:
        return None


def dead_probes(listing: subprocess.Popen[str] | None) -> list[str]:
    """The names of the listed probes whose owner is gone (nothing when the listing failed)."""
    if listing is None:
        return []
    try:
        out, _ = listing.communicate(timeout=_LIST_TIMEOUT)
    except subprocess.TimeoutExpired:
        listing.kill()
        listing.communicate()
        return []
    if listing.returncode != 0:
        return []
    return [name for entry in ps_entries(out)
            if owner_gone(labels(entry).get(OWNER_LABEL, ""))
            for name in names(entry)[:1] if _PROBE_NAME.match(name)]


def remove_folders(probes: list[str]) -> None:
    """Remove the rootfs folders of ``probes`` (their containers were removed)."""
    for name in probes:
        # rmtree does not follow a symlink put in a folder's place.
        shutil.rmtree(probe_folder(name), ignore_errors=True)
