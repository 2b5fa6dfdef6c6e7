"""Reading a child's output pipe into masked, batched lines (shared by every executor)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from ._lines import LineSplitter

#: Receives (channel, lines joined by b"\n", number of lines).
OutputSink = Callable[[str, bytes, int], Awaitable[None]]

#: One read takes what the pipe holds up to this much: a burst of output
#: becomes one event record, not one per line.
READ_SIZE = 1 << 16


async def pump_lines(stream: trio.abc.ReceiveStream, channel: str, splitter: LineSplitter,
                     sink: OutputSink) -> None:
    """Feed ``stream`` through ``splitter`` to ``sink`` until EOF, then the unterminated rest.

    Cancellation: stops reading at once (the stream is closed); lines already handed
    to ``sink`` stay handed.
    """
    async with stream:
        while chunk := await stream.receive_some(READ_SIZE):
            lines, count = splitter.feed(bytes(chunk))
            if count:
                await sink(channel, lines, count)
    lines, count = splitter.flush()
    if count:
        await sink(channel, lines, count)
