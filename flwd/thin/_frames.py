"""What a server says to the thin client on its local socket (sans-IO, stdlib only).

The answer to the ``words`` form of ``POST /runs`` (``Accept:`` :data:`MEDIA_TYPE`) is a
sequence of frames, each a kind byte, a 4-byte big-endian length and that many bytes.
The server renders everything the command line prints — a run's lines and flwd's status
lines, exactly as the CLI's renderer (:class:`flwd.output.RunOutput`) writes them in a
local run, with the client's colours — so the client only copies bytes to its own
stdout and stderr and knows nothing of events or JSON: its start-up is the interpreter's.

======  ===========================================================================
kind    payload
======  ===========================================================================
``l``   this command line is for the client's own process (UTF-8 reason); nothing
        was done, nothing follows
``o``   bytes for the client's stdout
``e``   bytes for the client's stderr
``r``   a run was started for it (its id): a Ctrl-C from here on cancels it
``g``   ``flwd :logs`` found its run: a Ctrl-C from here on ends the command
``f``   the run ended (its status): the client exits as a local run does
``x``   the command is done; its exit status (ASCII digits)
``k``   nothing (keeps an idle connection alive)
======  ===========================================================================
"""

from __future__ import annotations

#: The version of what the thin client and a server say to each other on the local
#: socket. A client runs locally rather than talk to a server of another version.
#: 2: the verbs ``:jobs``, ``:plan``, ``:runs``, ``:logs``, ``:cancel`` in the words form
#: too; 3: the server renders what the command line prints (these frames), not events.
CLIENT_PROTOCOL = 3
#: The answer's media type, asked for with ``Accept``.
MEDIA_TYPE = "application/x-flwd-terminal"

LOCAL, STDOUT, STDERR, RUN, LOGS, FINISHED, EXIT, KEEP = (
    b"l", b"o", b"e", b"r", b"g", b"f", b"x", b"k")
KINDS = frozenset((LOCAL, STDOUT, STDERR, RUN, LOGS, FINISHED, EXIT, KEEP))
#: The longest payload a frame may have: what one output record renders to is bounded
#: by the journal's line cap and pipe reads (about 1 MiB); anything longer is garbage.
MAX_PAYLOAD = 16 << 20


class FrameError(Exception):
    """The bytes are not frames of this protocol."""


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    """One frame."""
    return kind + len(payload).to_bytes(4, "big") + payload


class FrameReader:
    """Frames parsed from the bytes :meth:`feed` is given, in order."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        """The frames ``data`` completes.

        Raises:
            FrameError: an unknown kind or an impossible length.
        """
        buffer = self._buffer + data if self._buffer else data
        out = []
        start = 0
        while len(buffer) - start >= 5:
            kind = buffer[start:start + 1]
            if kind not in KINDS:
                raise FrameError(f"unknown frame kind {kind!r}")
            size = int.from_bytes(buffer[start + 1:start + 5], "big")
            if size > MAX_PAYLOAD:
                raise FrameError(f"a frame of {size} bytes")
            end = start + 5 + size
            if end > len(buffer):
                break
            out.append((kind, buffer[start + 5:end]))
            start = end
        self._buffer = buffer[start:]
        return out

    @property
    def pending(self) -> bool:
        """Part of a frame is waiting for the rest."""
        return bool(self._buffer)
