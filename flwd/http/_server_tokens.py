"""Which tokens a server checks: its tokens file, or the Core DB's when servers share it.

On a Core DB several servers share (PostgreSQL, ``Store.clustered``) the tokens are the
database's (``flwd.tokens.core_db``), reloaded in the background, unless ``--tokens``
names a file. On SQLite, the tokens file of the data dir (or ``--tokens``), reloaded by
the request that finds it changed, as always.
"""

from __future__ import annotations

import logging
from pathlib import Path

import trio

from flwd.errors import UsageError
from flwd.store import Store
from flwd.tokens import TokenStore

__all__ = ["keep_tokens_fresh", "open_server_tokens"]

_log = logging.getLogger("flwd.tokens")


async def open_server_tokens(store: Store, chosen: Path | None, path: Path) -> TokenStore:
    """The tokens the server checks: ``store``'s when it is shared and no ``--tokens``
    file is ``chosen``, else the tokens file at ``path``.

    Raises:
        UsageError: a bad tokens file. StorageError: the Core DB cannot be read.

    Cancellation: nothing is left behind (a read under way finishes in its thread).
    """
    if chosen is not None or not store.clustered:
        return TokenStore(path)
    from flwd.tokens.core_db import CoreDbTokens

    # A server migrates its Core DB as it starts (its journal would, a moment later):
    # an older schema has no tokens table yet, and a reader refuses an older schema.
    await trio.to_thread.run_sync(store.migrate)
    tokens = await trio.to_thread.run_sync(CoreDbTokens, store)
    left = await trio.to_thread.run_sync(_file_tokens, path)
    if left:
        # Its tokens would silently stop working: say how to move them.
        _log.warning("the tokens file is not read on a shared Core DB; import its tokens",
                     extra={"fields": {"tokens_file": str(path), "tokens": left,
                                       "fix": "flwd :tokens import --db …"}})
    return tokens


def _file_tokens(path: Path) -> int:
    try:
        return len(TokenStore(path).entries)
    except UsageError:
        return 0


async def keep_tokens_fresh(tokens: TokenStore, stop: trio.Event) -> None:
    """Reload the Core DB's tokens until the server stops (``stop`` is set); nothing for
    a tokens file (reloaded by each request when it changed).

    Cancellation: stops at once.
    """
    from flwd.tokens.core_db import CoreDbTokens

    if not isinstance(tokens, CoreDbTokens):
        return
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tokens.keep_fresh)
        await stop.wait()
        nursery.cancel_scope.cancel()
