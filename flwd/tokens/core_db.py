"""API tokens in a Core DB several servers share (PostgreSQL): minted, listed, revoked and
checked there, so a token works on every replica.

The same entries as the tokens file (the SHA-256 of each token, never the token; scopes;
an optional expiry), one row each (``flwd.store``'s ``tokens_load``/``token_add``/
``token_remove``). A server does not ask the Core DB on each request — that would put a
round trip to the database (and a hand-off to a worker thread) in front of every API
call, and make every request fail while the database is away — it keeps the set in
memory (:class:`CoreDbTokens`) and reloads it every :data:`REFRESH` seconds in a
worker thread: a token minted or revoked through any server or ``flwd :tokens --db`` is
seen by every server within that bound. While the Core DB cannot be read, the set
loaded last stays in force (as a bad tokens file does), with one warning.

Blocking, but for :meth:`CoreDbTokens.keep_fresh`. Imported only with a Core DB that
keeps tokens (``Store.clustered``): the CLI on a tokens file never loads it.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from flwd.errors import StorageError, UsageError
from flwd.store import Store, TokenRecord

from ._expiry import format_time
from ._file import MintedToken, read_tokens
from ._model import SCOPES, TOKEN_PREFIX, TokenEntry, check_name, check_scopes, digest
from ._store import TokenStore

__all__ = ["REFRESH", "CoreDbTokens", "ImportResult", "create_in", "entries_of",
           "import_file", "revoke_in"]

_log = logging.getLogger("flwd.tokens")

#: Seconds between two reloads of a server's tokens from the Core DB: the bound on how
#: long a revoked token still works on another server.
REFRESH: Final = 1.0


def _entry(record: TokenRecord) -> TokenEntry:
    # A scope this flwd does not know (a newer one's) grants nothing here.
    return TokenEntry(record.name, record.sha256.lower(),
                      frozenset(scope for scope in record.scopes if scope in SCOPES),
                      created_at=record.created_at, expires_at=record.expires_at)


def entries_of(store: Store) -> list[TokenEntry]:
    """The tokens the Core DB keeps, by name.

    Raises:
        StorageError: the Core DB cannot be read.
    """
    return [_entry(record) for record in store.tokens_load()]


class CoreDbTokens(TokenStore):
    """The live set of tokens of a Core DB (a :class:`TokenStore` to the HTTP layer).

    Raises:
        StorageError: the Core DB cannot be read at start (no earlier set to fall back on).
    """

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.path = Path(store.location)  # no file is read: see where
        self.where = store.location
        self._clock = clock
        self._install(entries_of(store))
        self.generation = 1
        self._failing = False

    def _install(self, entries: Sequence[TokenEntry]) -> None:
        self._entries = tuple(entries)
        self._by_id = {entry.id: entry for entry in self._entries}

    def refresh(self) -> None:
        """Nothing: the set is reloaded by :meth:`keep_fresh`, never in a request."""

    def reload(self) -> None:
        """Read the tokens again (blocking); on a failure keep the ones in force."""
        try:
            entries = entries_of(self.store)
        except StorageError as exc:
            if not self._failing:
                _log.warning("cannot read the tokens of the Core DB; the tokens loaded "
                             "before stay in force", extra={"fields": {
                                 "db": self.store.location, "reason": exc.one_line(),
                                 "tokens": len(self._entries)}})
            self._failing = True
            return
        self._failing = False
        if tuple(entries) != self._entries:
            self._install(entries)
            self.generation += 1

    async def keep_fresh(self, interval: float = REFRESH) -> None:
        """Reload every ``interval`` seconds, until cancelled.

        Cancellation: stops at once; a reload under way finishes in its thread and is
        dropped.
        """
        import trio  # here: the CLI's verbs import this module without trio

        while True:
            await trio.sleep(interval)
            await trio.to_thread.run_sync(self.reload, abandon_on_cancel=True)


def create_in(store: Store, name: str, scopes: Sequence[str], *,
              expires_at: float | None = None, now: float | None = None) -> MintedToken:
    """Mint a token and keep its digest in the Core DB (as ``create_token`` in a file).

    Raises:
        UsageError: a bad name or scope, no scope, an expiry not after ``now``, or a
            name already taken. StorageError: the Core DB cannot be written.
    """
    check_name(name)
    granted = check_scopes(scopes)
    if not granted:
        raise UsageError("a token needs at least one --scope", hint="e.g. --scope runs:read")
    now = time.time() if now is None else now
    if expires_at is not None and expires_at <= now:
        raise UsageError("the expiry is in the past", hint=f"it is {format_time(now)} now")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = TokenRecord(name, digest(token), tuple(granted), format_time(now), expires_at)
    if not store.token_add(record):
        raise UsageError(f"a token named '{name}' already exists in the Core DB "
                         f"{store.location}", hint="pick another --name, or revoke it first "
                                                   f"with 'flwd :tokens revoke {name}'")
    return MintedToken(token, _entry(record))


def revoke_in(store: Store, name: str) -> None:
    """Remove the token called ``name`` from the Core DB.

    Raises:
        UsageError: no such token. StorageError: the Core DB cannot be written.
    """
    if not store.token_remove(name):
        shown = name if len(name) <= 64 else name[:64] + "…"
        raise UsageError(f"no token named '{shown}' in the Core DB {store.location}",
                         hint="see 'flwd :tokens list'")


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What :func:`import_file` did: the names added, and those already there (kept)."""

    added: tuple[str, ...]
    kept: tuple[str, ...]


def import_file(store: Store, path: Path) -> ImportResult:
    """Copy every token of the tokens file at ``path`` into the Core DB (digests, scopes,
    times as they are); a name already in the Core DB is kept as it is there.

    Raises:
        UsageError: the file cannot be read or is malformed. StorageError.
    """
    added: list[str] = []
    kept: list[str] = []
    for entry in read_tokens(path).entries:
        record = TokenRecord(entry.name, entry.sha256, tuple(sorted(entry.scopes)),
                             entry.created_at, entry.expires_at)
        (added if store.token_add(record) else kept).append(entry.name)
    return ImportResult(tuple(added), tuple(kept))
