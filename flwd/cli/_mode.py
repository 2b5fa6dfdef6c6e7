"""Local or remote mode: the one place where the CLI picks its backend.

``--server URL`` (or ``FLWD_SERVER``) selects the remote backend: a running
``flwd :serve`` does the work. Without it, this process does
(:class:`~flwd.cli._local.LocalBackend`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ._backend import Backend
from ._context import CONTEXT


def choose_backend() -> Backend:
    """The backend of this command line.

    Raises:
        UsageError: ``--server`` / ``FLWD_SERVER`` is not an http(s) URL.
    """
    server = CONTEXT.server_url()
    if server is not None:
        # Imported here to keep start-up fast: httpx only in remote mode.
        from ._remote import RemoteBackend

        return RemoteBackend(server)
    # Imported here to keep start-up fast: the engine, planning and the Core DB only
    # in local mode.
    from ._local import LocalBackend

    return LocalBackend(CONTEXT)


@asynccontextmanager
async def open_backend() -> AsyncIterator[Backend]:
    """:func:`choose_backend`, closed when the verb is done.

    **Cancellation:** the backend is closed anyway (shielded).
    """
    backend = choose_backend()
    try:
        yield backend
    finally:
        await backend.aclose()


@asynccontextmanager
async def closing(backend: Backend) -> AsyncIterator[Backend]:
    """Close ``backend`` (chosen earlier) when the verb is done.

    **Cancellation:** the backend is closed anyway (shielded).
    """
    try:
        yield backend
    finally:
        await backend.aclose()
