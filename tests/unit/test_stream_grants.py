"""A stream's credentials re-checked while it runs (flwd/http/_grants.py), on trio's
virtual clock with a real tokens file: keep-alives keep their pace, a revocation ends it."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, cast

import trio

from flwd.events import EventRecord
from flwd.http._auth import Authenticator, Principal
from flwd.http._grants import RECHECK, Sessions, guarded
from flwd.tokens import TokenStore, create_token, revoke_token

KEEP_ALIVE = 15.0


def _sessions(tokens: Path) -> Sessions:
    # Grants read the tokens only: no engine (no store) is asked anything.
    return Sessions(cast(Any, None), Authenticator(TokenStore(tokens), dev=False))


class Beats:
    """The engine's stream while nothing happens: an empty batch every ``heartbeat``."""

    def __init__(self) -> None:
        self.asked: float | None = None
        self.closed = False

    async def __call__(self, heartbeat: float) -> AsyncGenerator[list[EventRecord], None]:
        self.asked = heartbeat
        try:
            while True:
                await trio.sleep(heartbeat)
                yield []
        finally:
            self.closed = True


async def test_an_unchecked_stream_keeps_its_pace(autojump_clock: trio.abc.Clock,
                                                  tmp_path: Path) -> None:
    sessions = _sessions(tmp_path / "tokens.json")
    beats = Beats()
    with sessions.grant(None) as grant:  # --dev or an open stream: nothing to re-check
        stream = guarded(grant, KEEP_ALIVE, beats)
        times = []
        for _ in range(3):
            assert await anext(stream) == []
            times.append(trio.current_time())
        await stream.aclose()
    assert beats.asked == KEEP_ALIVE and beats.closed
    assert times == [KEEP_ALIVE, 2 * KEEP_ALIVE, 3 * KEEP_ALIVE]


async def test_a_token_stream_rechecks_often_keeps_alive_seldom_and_ends_on_revocation(
        autojump_clock: trio.abc.Clock, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    minted = create_token(tokens, "browser", ["events:read"])
    create_token(tokens, "other", ["events:read"])
    sessions = _sessions(tokens)
    principal = Principal("browser", frozenset({"events:read"}), minted.entry.id)
    beats = Beats()
    with sessions.grant(principal) as grant:
        stream = guarded(grant, KEEP_ALIVE, beats)
        times = []
        for _ in range(2):
            assert await anext(stream) == []
            times.append(trio.current_time())
        assert beats.asked == RECHECK
        # Keep-alives as before (one per keep-alive interval), not one per re-check.
        assert [round(t) for t in times] == [KEEP_ALIVE, 2 * KEEP_ALIVE]
        revoke_token(tokens, "other")  # another token's revocation changes nothing
        assert await anext(stream) == []
        assert round(trio.current_time()) == 3 * KEEP_ALIVE
        revoke_token(tokens, "browser")
        revoked_at = trio.current_time()
        async for _ in stream:
            raise AssertionError("a revoked stream yields nothing more")
        assert trio.current_time() - revoked_at <= 2 * RECHECK
        assert grant.revoked and beats.closed
        assert not grant.holds(now=True)
