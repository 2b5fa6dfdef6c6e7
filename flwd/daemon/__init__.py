"""Which flwd process owns a data dir: ``flwd :serve`` for its lifetime, or a local
``flwd :sources add|remove|refresh`` for its duration.

::

    <data>/serve.lock    the exclusive flock the owner holds (the kernel drops it
                         when the owner exits, however it exits)
    <data>/serve.json    who holds it: kind, pid and start time; a server adds the
                         URL it serves, its scripts root, its Unix socket and the
                         thin client's protocol it speaks (written atomically)
    <data>/serve.sock    a server's Unix socket (mode 0600; see flwd.http)

The lock, never the JSON alone, says whether the data dir is owned: a file left
by a SIGKILLed server names a process that holds nothing. See ``_owner`` for
the sans-IO part (who, and what to tell a refused command) and ``_lock`` for
the flock itself.
"""

from ._lock import LOCK_FILE as LOCK_FILE
from ._lock import OWNER_FILE as OWNER_FILE
from ._lock import DataDirLock as DataDirLock
from ._lock import hold_data_dir as hold_data_dir
from ._lock import read_owner as read_owner
from ._owner import DataDirBusy as DataDirBusy
from ._owner import Owner as Owner
from ._owner import client_url as client_url
from ._socket import CLIENT_PROTOCOL as CLIENT_PROTOCOL
from ._socket import LOCAL_SOCKET as LOCAL_SOCKET
from ._socket import socket_address as socket_address
