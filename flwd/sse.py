"""Server-Sent Events decoding for flwd's clients: the remote CLI and the thin client (sans-IO,
stdlib only).

Follows the WHATWG "event stream interpretation" rules: lines end with CRLF,
LF or CR (a CRLF split across two chunks is still one line end); a blank line
dispatches the frame; lines starting with ``:`` are comments (keep-alives);
``field: value`` drops one space after the colon; ``data`` lines accumulate
joined by ``\\n``; ``id`` sets the last event id (kept across frames); ``retry``
sets the reconnection delay; unknown fields are ignored. A frame without data
is not dispatched, and an unterminated frame at the end of the stream is
discarded (call :meth:`SSEDecoder.close` to check for one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

_LINE_END: Final = re.compile(rb"\r\n|\r|\n")
_BOM: Final = b"\xef\xbb\xbf"

#: A line longer than this (without a line end) is a broken stream, not an event.
MAX_LINE: Final = 16 << 20


@dataclass(frozen=True, slots=True)
class SSEFrame:
    """One dispatched event: its type (``message`` by default), data and the last event id."""

    event: str
    data: str
    id: str | None = None


class SSEDecoder:
    """Feed it bytes as they arrive; it returns the frames each chunk completes."""

    def __init__(self, *, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        #: The last ``id`` field seen (what a reconnect sends as ``Last-Event-ID``).
        self.last_event_id: str | None = None
        #: The last valid ``retry`` field, in milliseconds.
        self.retry: int | None = None
        self._buffer = b""
        self._skip_lf = False  # the previous chunk ended with CR: a leading LF completes it
        self._started = False
        self._event = ""
        self._data: list[str] = []
        self._pending = False  # a field was seen since the last dispatch

    def feed(self, chunk: bytes) -> list[SSEFrame]:
        """The frames completed by ``chunk``.

        Raises:
            ValueError: a single line exceeds ``max_line`` bytes.
        """
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        data = self._buffer + chunk
        if not self._started:
            if len(data) < len(_BOM) and _BOM.startswith(data):
                self._buffer = data
                return []
            self._started = True
            if data.startswith(_BOM):
                data = data[len(_BOM):]
        lines = _LINE_END.split(data)
        self._buffer = lines.pop()
        if len(self._buffer) > self.max_line:
            raise ValueError(f"event stream line longer than {self.max_line} bytes")
        # A trailing CR ended a line; an LF at the start of the next chunk belongs to it.
        self._skip_lf = data.endswith(b"\r")
        frames: list[SSEFrame] = []
        for line in lines:
            frame = self._line(line.decode("utf-8", "replace"))
            if frame is not None:
                frames.append(frame)
        return frames

    def close(self) -> bool:
        """End of stream: True when an unterminated frame (or line) was dropped."""
        dropped = bool(self._buffer) or self._pending
        self._buffer = b""
        self._reset()
        return dropped

    def _reset(self) -> None:
        self._event = ""
        self._data = []
        self._pending = False

    def _line(self, line: str) -> SSEFrame | None:
        if not line:
            if not self._data:
                self._reset()
                return None
            frame = SSEFrame(self._event or "message", "\n".join(self._data), self.last_event_id)
            self._reset()
            return frame
        if line.startswith(":"):
            return None  # a comment: keep-alive or ":connected"
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        self._pending = True
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\x00" not in value:
            self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None
