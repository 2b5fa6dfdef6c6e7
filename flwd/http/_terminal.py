"""What a thin client's command line prints, rendered by the server (``_command_line``):
the CLI's own renderer writing the client's stdout and stderr as frames
(:mod:`flwd.thin._frames`), with the client's colours."""

from __future__ import annotations

from typing import BinaryIO, cast

from flwd.events import EventRecord
from flwd.output import RunOutput
from flwd.thin import frame


class Renderer:
    """A :class:`RunOutput` writing the client's stdout and stderr as frames, in the
    order it writes them (the order a terminal shows them in)."""

    def __init__(self, as_json: bool, *, color: bool, prefix_steps: bool = False) -> None:
        self._pieces: list[bytes] = []
        self.output = RunOutput(as_json, prefix_steps=prefix_steps, color=color, streams=(
            cast(BinaryIO, _FrameWriter(b"o", self._pieces)),
            cast(BinaryIO, _FrameWriter(b"e", self._pieces))))

    def __call__(self, records: list[EventRecord]) -> bytes:
        self.output.write(records)
        return self.take()

    def error(self, text: str) -> bytes:
        self.output.error(text)
        return self.take()

    def take(self) -> bytes:
        out = b"".join(self._pieces)
        self._pieces.clear()
        return out


class _FrameWriter:
    """The part of a binary stream :class:`RunOutput` uses: each write one frame."""

    def __init__(self, kind: bytes, pieces: list[bytes]) -> None:
        self.kind = kind
        self.pieces = pieces

    def write(self, data: bytes) -> int:
        if data:
            self.pieces.append(frame(self.kind, data))
        return len(data)

    def flush(self) -> None:
        pass  # the frames go out with the record that made them
