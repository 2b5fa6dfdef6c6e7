"""How a server (and the supervisor of ``--workers``) owns its data dir and stops."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

import trio

from flwd.daemon import DataDirLock, hold_data_dir
from flwd.settings import Settings

from ._logging import lifecycle


@asynccontextmanager
async def own_data_dir(settings: Settings) -> AsyncIterator[DataDirLock]:
    """Own the data dir while serving (:mod:`flwd.daemon`): a second server on it, or a
    local ``:sources`` change behind this one's back, is refused with one line.

    Raises:
        DataDirBusy: another server (or a ``:sources`` change) owns it.

    Cancellation: the lock is released however the block ends (the kernel
    releases it when the process dies).
    """
    lock = await trio.to_thread.run_sync(partial(
        hold_data_dir, settings.data_dir, "serve", [":serve"],
        scripts_root=str(settings.scripts_root)))
    try:
        yield lock
    finally:
        lock.release()


def stop(stopping: trio.Event, close_streams: Callable[[], None]) -> None:
    """Begin a graceful stop: end every event stream, then let the server stop."""
    close_streams()
    stopping.set()


async def watch_signals(stopping: trio.Event, close_streams: Callable[[], None]) -> None:
    """Stop on the first SIGTERM/SIGINT; return, too, once ``stopping`` is set for another
    reason (a worker whose supervisor is gone).

    Cancellation: the signals' previous handlers are back.
    """
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_when, stopping, nursery.cancel_scope)
            async for signum in signals:
                lifecycle("shutting down", signal=signal.Signals(signum).name)
                stop(stopping, close_streams)
                return


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()

