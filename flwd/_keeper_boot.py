"""Starting the process keeper (:mod:`flwd.execute._keeper_main`), standard library only.

A keeper is a Python process: it is ready tens of milliseconds after it is started, and
the first host step of a run waits for it. ``flwd JOB`` starts it before it imports the
engine (see :func:`flwd.cli._dispatch`), so that it boots on the other core while this
process loads trio, the engine and the planner, which take several times longer; the
first host step takes it up (:meth:`flwd.execute.Keeper.launch`). Not taken up (the run
was refused, the job runs only containers), it leaves with this process: its control
socket closes. This module imports nothing of flwd and nothing the standard library
has not loaded by then, so starting it early costs what ``posix_spawn`` costs.
"""

from __future__ import annotations

import os
import socket
import sys

#: The keeper's program, beside flwd's side of it.
_MAIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "execute", "_keeper_main.py")
#: A keeper started by :func:`prelaunch_keeper` for this process's next trio run: (its
#: pid, our end of its control socket, our pid: a forked child does not take it up).
_prelaunched: tuple[int, socket.socket, int] | None = None


def prelaunch_keeper() -> None:
    """Start the keeper of this process's next trio run now (blocking, about a millisecond).

    Does nothing when one is waiting already.
    """
    global _prelaunched
    if _prelaunched is None or _prelaunched[2] != os.getpid():
        pid, ours = spawn_keeper()
        _prelaunched = (pid, ours, os.getpid())


def take_prelaunched() -> tuple[int, socket.socket] | None:
    """The keeper :func:`prelaunch_keeper` started for this process (its pid and our end
    of its control socket), handed over once; None when there is none."""
    global _prelaunched
    early, _prelaunched = _prelaunched, None
    if early is None or early[2] != os.getpid():
        return None
    return early[0], early[1]


def spawn_keeper() -> tuple[int, socket.socket]:
    """Start a keeper process; its pid and our end of its control socket."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        child_end = theirs.fileno()
        if child_end == 3:  # dup2(3, 3) would keep close-on-exec set
            child_end = os.dup(child_end)
        pid = os.posix_spawn(
            sys.executable, [sys.executable, "-I", "-S", "-B", _MAIN], {},
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, child_end, 3),
            ],
            setsid=True, setsigmask=())
        if child_end != theirs.fileno():
            os.close(child_end)
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return pid, ours

