"""What a login grants, and for how long: browser sessions, and the streams credentials opened.

:class:`Sessions` keeps the server's side of the session cookie in the Core DB
(through the :class:`~flwd.store.Store`, so a session outlives a restart and a
run page keeps tailing): a digest of the id, the token's id, the expiry. A
session carries no scopes of its own: every request re-reads its token with
``TokenStore.active``, so it has the token's scopes of the moment, and the
token's revocation or expiry ends it at once (the row goes on that lookup).

A stream (SSE, NDJSON, WebSocket) outlives the request that checked its
credentials. :func:`guarded` re-checks them while it runs (:class:`StreamGrant`):
a logout, a session's expiry or its eviction end it at its next batch or
heartbeat; a revoked or expired token within :data:`RECHECK` seconds.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import aclosing, contextmanager
from functools import partial

import trio

from flwd.engine import Engine
from flwd.events import EventRecord
from flwd.store import SessionRecord, install_key
from flwd.tokens import TokenEntry, TokenStore

from ._auth import Authenticator, Principal, Refusal
from ._browser import SessionGrant, csrf_token, is_session_id, new_session_id, session_digest

#: A session lives this long at most (``flwd :serve --session-ttl``), and never past
#: its token's expiry.
DEFAULT_TTL = 12 * 3600.0
#: Sessions one token keeps at most (one per browser it logged in from); a login
#: beyond that ends the token's oldest. Bounds the rows however often it logs in.
MAX_PER_TOKEN = 16
#: A stream re-reads its token at least this often (seconds; one ``stat`` each).
RECHECK = 1.0

ENDED = Refusal("the session expired or was ended (log in again: POST /session)",
                "invalid_token")


class Sessions:
    """The server's side of browser sessions.

    Args:
        engine: whose store keeps the sessions and whose data dir holds the key of
            the CSRF tokens (read on first use: building the app reads nothing).
        authenticator: whose live tokens file sessions re-read.
        ttl: seconds a session lives at most.
    """

    def __init__(self, engine: Engine, authenticator: Authenticator, *,
                 ttl: float = DEFAULT_TTL, keep: int = MAX_PER_TOKEN) -> None:
        self._engine = engine
        self._authenticator = authenticator
        self.ttl = ttl
        self.keep = keep
        self._key: bytes | None = None
        #: Sessions some open stream was opened with → how many streams.
        self._watched: dict[str, int] = {}
        #: Those of them ended since (their streams end at their next check).
        self._ended: set[str] = set()

    @property
    def tokens(self) -> TokenStore:
        return self._authenticator.store

    async def csrf_token(self, session_id: str) -> str:
        """The session's CSRF token (see ``_browser.csrf_token``).

        Raises:
            StorageError: the install's key cannot be read or made.

        Cancellation: the key's first read is not interrupted (it is short).
        """
        if self._key is None:
            self._key = await trio.to_thread.run_sync(
                install_key, self._engine.settings.data_dir)
        return csrf_token(self._key, session_id)

    async def login(self, entry: TokenEntry) -> tuple[str, Principal]:
        """A new session of the token ``entry``: its id (for the cookie, nowhere else)
        and the principal it is. The id is fresh whatever the browser sent: a session
        id is only ever made here (no fixation).

        Raises:
            StorageError: the Core DB cannot be written.

        Cancellation: the session may have been stored; its id is then lost, and the
        row expires unused.
        """
        now = self.tokens.now()
        expires = min(now + self.ttl, entry.expires_at or math.inf)
        session_id = new_session_id()
        record = SessionRecord(session_digest(session_id), entry.id, now, expires)
        evicted = await trio.to_thread.run_sync(partial(
            self._engine.store.session_create, record, keep=self.keep, now=now))
        self._end(evicted)
        grant = SessionGrant(record.id_hash, expires, await self.csrf_token(session_id))
        return session_id, Principal(entry.name, entry.scopes, entry.id, session=grant)

    async def resolve(self, session_ids: list[str]) -> Principal | Refusal:
        """The principal of the first live session among the cookie's values; a session
        found expired, or whose token is gone, is deleted.

        Raises:
            StorageError: the Core DB cannot be read or written.

        Cancellation: a deletion under way completes.
        """
        store = self._engine.store
        for session_id in session_ids:
            if not is_session_id(session_id):
                continue  # never looked up: a huge or malformed value costs nothing
            digest = session_digest(session_id)
            record = await trio.to_thread.run_sync(store.session_get, digest)
            if record is None:
                continue
            entry = self.tokens.active(record.token_id)
            if entry is None or record.expired(self.tokens.now()):
                await self.end([session_id])
                continue
            grant = SessionGrant(digest, record.expires_at, await self.csrf_token(session_id))
            return Principal(entry.name, entry.scopes, entry.id, session=grant)
        return ENDED

    async def end(self, session_ids: list[str]) -> None:
        """Delete these sessions (a logout, a replaced login, a dead session found).

        Raises:
            StorageError: the Core DB cannot be written.

        Cancellation: a deletion under way completes.
        """
        digests = [session_digest(value) for value in session_ids if is_session_id(value)]
        for digest in digests:
            await trio.to_thread.run_sync(self._engine.store.session_delete, digest)
        self._end(digests)

    def _end(self, digests: list[str]) -> None:
        self._ended.update(digest for digest in digests if digest in self._watched)

    @contextmanager
    def grant(self, principal: Principal | None) -> Iterator[StreamGrant]:
        """What a stream opened by ``principal`` re-checks while it runs."""
        session = principal.session if principal is not None else None
        if session is not None:
            self._watched[session.digest] = self._watched.get(session.digest, 0) + 1
        try:
            yield StreamGrant(self, principal)
        finally:
            if session is not None:
                left = self._watched.pop(session.digest) - 1
                if left:
                    self._watched[session.digest] = left
                else:
                    self._ended.discard(session.digest)

    def ended(self, digest: str) -> bool:
        return digest in self._ended


class StreamGrant:
    """Whether the credentials a stream was opened with still hold."""

    def __init__(self, sessions: Sessions, principal: Principal | None) -> None:
        self._sessions = sessions
        self._principal = principal
        self._next_check = -math.inf
        self.revoked = False

    @property
    def checked(self) -> bool:
        """Anything to re-check (a token; ``--dev`` and open streams have none)."""
        return self._principal is not None and self._principal.token_id is not None

    def holds(self, *, now: bool = False) -> bool:
        """The token is still active and the session (if any) alive. The token file
        is looked at once per :data:`RECHECK` seconds, or now when ``now``."""
        principal = self._principal
        if self.revoked or principal is None or principal.token_id is None:
            return not self.revoked
        session = principal.session
        if session is not None and (self._sessions.ended(session.digest)
                                    or self._sessions.tokens.now() >= session.expires_at):
            self.revoked = True
        elif now or trio.current_time() >= self._next_check:
            self._next_check = trio.current_time() + RECHECK
            self.revoked = self._sessions.tokens.active(principal.token_id) is None
        return not self.revoked


Events = AsyncGenerator[list[EventRecord], None]


async def guarded(grant: StreamGrant, keep_alive: float,
                  open_events: Callable[[float], Events]) -> Events:
    """The batches of ``open_events(heartbeat)`` until they end or ``grant`` no longer
    holds; empty batches (keep-alives) at most every ``keep_alive`` seconds.

    A checked grant asks for heartbeats every :data:`RECHECK` seconds, so a quiet
    stream notices a revocation as soon as a busy one.

    Cancellation: the events are closed however it ends.
    """
    heartbeat = min(keep_alive, RECHECK) if grant.checked else keep_alive
    # Heartbeats come a little late, never early: half of one is slack enough.
    due = keep_alive - heartbeat / 2
    quiet_since = trio.current_time()
    async with aclosing(open_events(heartbeat)) as events:
        async for batch in events:
            if not grant.holds():
                return
            if batch or heartbeat >= keep_alive or trio.current_time() - quiet_since >= due:
                quiet_since = trio.current_time()
                yield batch
