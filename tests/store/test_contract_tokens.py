"""The Core DB contract for API tokens (every backend, through the Store port only), and
the live set a server keeps of them (flwd.tokens.core_db): minted, seen by another store
of the database at its next reload, revoked, and kept in force while the database
cannot be read."""

from __future__ import annotations

import threading

import pytest

from flwd.errors import UsageError
from flwd.store import Store, TokenRecord
from flwd.tokens.core_db import CoreDbTokens, create_in, entries_of, revoke_in

from .conftest import Backend, PostgresBackend

SHA = "ab" * 32


def test_a_store_without_a_database_keeps_no_token(backend: Backend) -> None:
    store = backend.fresh()
    assert store.tokens_load() == []
    assert store.token_remove("ci") is False
    assert backend.footprint(store) == []


def test_tokens_are_added_once_by_name_and_digest_and_removed(backend: Backend) -> None:
    store = backend.fresh()
    other = backend.same(store)
    record = TokenRecord("ci", SHA, ("runs:read",), "2027-01-01T00:00:00Z", 1.9e9)
    assert store.token_add(record) is True
    assert other.token_add(TokenRecord("ci", "cd" * 32, ("*",))) is False  # the name
    assert other.token_add(TokenRecord("other", SHA, ("*",))) is False  # the digest
    assert other.tokens_load() == [record]
    assert other.token_remove("ci") is True and store.tokens_load() == []


def test_a_name_minted_twice_at_once_is_one_token(store: Store, backend: Backend) -> None:
    store.migrate()
    stores = [backend.same(store) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    refused: list[str] = []

    def mint(mine: Store) -> None:
        barrier.wait()
        try:
            create_in(mine, "ci", ["runs:read"])
        except UsageError as exc:
            refused.append(exc.one_line())

    threads = [threading.Thread(target=mint, args=(mine,)) for mine in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(refused) == 3 and all("already exists" in text for text in refused)
    assert [entry.name for entry in entries_of(store)] == ["ci"]


def test_the_live_set_follows_the_database_at_each_reload(backend: Backend) -> None:
    store = backend.fresh()
    live = CoreDbTokens(backend.same(store))
    minted = create_in(store, "ci", ["runs:read"])
    assert live.lookup(minted.token) is None  # not before its reload: never in a request
    live.reload()
    entry = live.lookup(minted.token)
    assert entry is not None and entry.scopes == {"runs:read"}
    assert live.active(entry.id) == entry
    revoke_in(store, "ci")
    live.reload()
    assert live.lookup(minted.token) is None and live.active(entry.id) is None


def test_the_live_set_stays_in_force_while_the_database_cannot_be_read(
        backend: Backend) -> None:
    if not isinstance(backend, PostgresBackend):
        pytest.skip("a SQLite file that cannot be opened reads as empty (reading never "
                    "writes); its server reads its tokens file anyway")
    store = backend.fresh()
    minted = create_in(store, "ci", ["*"])
    live = CoreDbTokens(store)
    broken = backend.unopenable()
    live.store = broken
    live.reload()  # one warning, the set kept
    assert live.lookup(minted.token) is not None
