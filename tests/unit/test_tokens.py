"""The token store on real files: expiry parsing, reload on change, atomic and locked writes."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from pathlib import Path

import pytest

from flwd.errors import UsageError
from flwd.http import Authenticator
from flwd.http._auth import Principal, Refusal
from flwd.tokens import (
    TokenStore,
    create_token,
    digest,
    format_time,
    load_tokens,
    parse_expires,
    read_tokens,
    revoke_token,
)

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
DAY = 86400


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- expiry ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("30d", NOW + 30 * DAY), ("12h", NOW + 12 * 3600), ("90m", NOW + 5400), ("45s", NOW + 45),
    ("2w", NOW + 14 * DAY), ("1d12h", NOW + DAY + 12 * 3600), (" 7d ", NOW + 7 * DAY),
    ("2028-01-01T00:00:00Z", 1830297600.0), ("2028-01-01T02:00:00+02:00", 1830297600.0),
    ("2028-01-01", 1830297600.0),
])
def test_expires_accepts_durations_and_zoned_times(text: str, expected: float) -> None:
    assert parse_expires(text, now=NOW) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("0d", "no time at all"), ("30", "invalid --expires"), ("d", "invalid --expires"),
    ("30 days", "invalid --expires"), ("-3d", "invalid --expires"), ("", "invalid --expires"),
    ("2028-01-01T00:00:00", "has no time zone"), ("2020-01-01T00:00:00Z", "in the past"),
    ("2027-01-15T08:00:00Z", "in the past"), ("99999999w", "too far in the future"),
    ("x" * 10_000, "invalid --expires"),
])
def test_expires_refuses_the_rest_in_one_bounded_line(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_expires(text, now=NOW)
    line = caught.value.one_line()
    assert message in line and "\n" not in line and len(line) < 300


def test_times_are_stored_and_shown_in_utc_whole_seconds() -> None:
    assert format_time(1830297600.7) == "2028-01-01T00:00:00Z"


# -- the file --------------------------------------------------------------------------------


def test_create_stores_a_digest_with_scopes_created_and_expiry_0600(tmp_path: Path) -> None:
    path = tmp_path / "data" / "tokens.json"
    minted = create_token(path, "ci", ["runs:read", "*"], expires_at=NOW + DAY, now=NOW)
    text = path.read_text()
    assert minted.token.startswith("flwd_") and minted.token not in text
    [item] = json.loads(text)["tokens"]
    assert item == {"name": "ci", "sha256": digest(minted.token),
                    "scopes": ["jobs:read", "jobs:write", "runs:read", "runs:write",
                               "events:read", "sources:read", "sources:write", "metrics:read",
                               "ruley:read", "ruley:write", "hooks:trigger"],
                    "created_at": "2027-01-15T08:00:00Z", "expires_at": "2027-01-16T08:00:00Z"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [entry] = load_tokens(path)
    assert entry == minted.entry and entry.expires_at == NOW + DAY
    assert entry.to_json(NOW) == {"name": "ci", "scopes": sorted(entry.scopes),
                                  "created_at": "2027-01-15T08:00:00Z",
                                  "expires_at": "2027-01-16T08:00:00Z", "expired": False}
    assert entry.to_json(NOW + DAY)["expired"] is True


def test_names_are_unique_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    create_token(path, "ci", ["runs:read"])
    with pytest.raises(UsageError, match="a token named 'ci' already exists"):
        create_token(path, "ci", ["jobs:read"])
    for bad in ("", "a b", "-x", "x" * 65, "a/b"):
        with pytest.raises(UsageError, match="invalid token name"):
            create_token(path, bad, ["runs:read"])
    with pytest.raises(UsageError, match="at least one --scope"):
        create_token(path, "none", [])
    with pytest.raises(UsageError, match="unknown scope runs:delete"):
        create_token(path, "bad", ["runs:delete"])
    with pytest.raises(UsageError, match="in the past"):
        create_token(path, "late", ["runs:read"], expires_at=NOW - 1, now=NOW)
    assert [e.name for e in load_tokens(path)] == ["ci"]


def test_changes_keep_what_they_do_not_know(tmp_path: Path) -> None:
    # A created_at, a field of a later version, a top-level key: none is lost by a rewrite.
    path = tmp_path / "tokens.json"
    keep = {"name": "old", "sha256": "ab" * 32, "scopes": ["runs:read"],
            "created_at": "2026-01-01T00:00:00Z", "note": "from the future"}
    path.write_text(json.dumps({"version": 7, "tokens": [keep]}))
    create_token(path, "new", ["jobs:read"])
    revoke_token(path, "new")
    assert json.loads(path.read_text()) == {"version": 7, "tokens": [keep]}


def test_revoke_removes_one_token_and_names_an_unknown_one(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    with pytest.raises(UsageError, match="no token named 'ci'"):
        revoke_token(path, "ci")
    assert not path.exists() and not list(tmp_path.iterdir())  # no file, no lock file made
    for name in ("ci", "reader", "ops"):
        create_token(path, name, ["runs:read"])
    assert revoke_token(path, "reader").name == "reader"
    assert [e.name for e in load_tokens(path)] == ["ci", "ops"]
    with pytest.raises(UsageError, match="no token named 'reader'") as caught:
        revoke_token(path, "reader")
    assert "flwd :tokens list" in caught.value.one_line()


def test_a_symlinked_file_stays_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real" / "tokens.json"
    real.parent.mkdir()
    link = tmp_path / "tokens.json"
    link.symlink_to(real)
    create_token(link, "ci", ["runs:read"])
    assert link.is_symlink() and [e.name for e in load_tokens(real)] == ["ci"]


@pytest.mark.parametrize(("content", "message"), [
    ("{", "not valid JSON"), ("[]", "expected {\"tokens\": [...]}"),
    ('{"tokens": [{"name": "x"}]}', "tokens[0]: missing 'sha256'"),
    ('{"tokens": [{"name": "x", "sha256": "zz", "scopes": []}]}', "not a SHA-256"),
    ('{"tokens": [{"name": "x", "sha256": "' + "a" * 64 + '", "scopes": ["nope"]}]}',
     "unknown scope nope"),
    ('{"tokens": [{"name": "x", "sha256": "' + "a" * 64 + '", "scopes": [], '
     '"expires_at": "soon"}]}', "expires_at is not a time"),
    ('{"tokens": [' + ",".join(['{"name": "x", "sha256": "' + "a" * 64 + '", "scopes": []}'] * 2)
     + "]}", "the name 'x' is used twice"),
])
def test_a_malformed_file_is_one_line_naming_the_file(tmp_path: Path, content: str,
                                                      message: str) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(content)
    with pytest.raises(UsageError) as caught:
        read_tokens(path)
    line = caught.value.one_line()
    assert str(path) in line and message in line and "\n" not in line
    with pytest.raises(UsageError):  # and a change never overwrites what it cannot read
        create_token(path, "new", ["runs:read"])
    assert path.read_text() == content


def test_a_fifo_in_the_files_place_is_refused_without_hanging(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    os.mkfifo(path)
    with pytest.raises(UsageError, match="not a regular file"):
        read_tokens(path)


def test_concurrent_creates_lose_no_token_and_readers_never_see_half_a_file(
        tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    writers, per_writer = 8, 12
    start = threading.Barrier(writers + 1)
    done = threading.Event()
    failures: list[BaseException] = []
    reads = 0

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(per_writer):
                create_token(path, f"w{n}-{i}", ["runs:read"])
        except BaseException as exc:
            failures.append(exc)

    def read() -> None:
        nonlocal reads
        start.wait()
        while not done.is_set():
            try:
                read_tokens(path)  # raises on a torn or half-written file
                reads += 1
            except BaseException as exc:
                failures.append(exc)
                return

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    reader = threading.Thread(target=read)
    for thread in [*threads, reader]:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    done.set()
    reader.join(timeout=60)
    assert not failures, failures
    assert reads > 0
    names = {entry.name for entry in load_tokens(path)}
    assert names == {f"w{n}-{i}" for n in range(writers) for i in range(per_writer)}
    # Only the file and its lock file remain: no temporary file is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.json", "tokens.json.lock"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# -- the live store --------------------------------------------------------------------------


def test_the_store_sees_creates_and_revokes_on_the_next_lookup(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    first = create_token(path, "first", ["runs:read"])
    store = TokenStore(path)
    assert store.lookup(first.token) == first.entry
    second = create_token(path, "second", ["jobs:read"])  # minted while the store is live
    assert store.lookup(second.token) == second.entry
    revoke_token(path, "first")
    assert store.lookup(first.token) is None
    assert store.lookup("flwd_unknown") is None
    assert [e.name for e in store.entries] == ["second"]


def test_an_unchanged_file_is_not_read_again(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    minted = create_token(path, "ci", ["runs:read"])
    store = TokenStore(path)
    for _ in range(200):
        assert store.lookup(minted.token) is not None
    assert store.generation == 1  # loaded once; every lookup only stat'ed it
    os.utime(path)  # touched: a new version to look at
    store.refresh()
    assert store.generation == 2


def test_revocation_is_observable_by_token_id(tmp_path: Path) -> None:
    # What a web session keeps: the token's id, checked on each use.
    path = tmp_path / "tokens.json"
    clock = Clock(NOW)
    minted = create_token(path, "ui", ["runs:read"], expires_at=NOW + 60, now=NOW)
    store = TokenStore(path, clock=clock)
    token_id = minted.entry.id
    assert token_id.startswith("tok-") and minted.entry.sha256 not in token_id
    assert store.active(token_id) == minted.entry
    clock.now = NOW + 60
    assert store.active(token_id) is None  # expired
    clock.now = NOW
    revoke_token(path, "ui")
    assert store.active(token_id) is None  # revoked
    again = create_token(path, "ui", ["runs:read"])  # the same name is another token
    assert again.entry.id != token_id and store.active(token_id) is None


def test_a_file_turned_bad_keeps_the_last_good_set_and_warns_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "tokens.json"
    minted = create_token(path, "ci", ["runs:read"])
    store = TokenStore(path)
    caplog.set_level(logging.INFO, logger="flwd.tokens")
    path.write_text('{"tokens": [')  # an editor's half-written save
    for _ in range(50):
        assert store.lookup(minted.token) == minted.entry
        assert store.lookup("flwd_other") is None  # and the door stays shut
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "not valid JSON" in warnings[0].fields["reason"]  # type: ignore[attr-defined]
    caplog.clear()
    path.unlink()
    path.mkdir()  # unreadable in another way
    assert store.lookup(minted.token) == minted.entry
    assert store.lookup(minted.token) == minted.entry
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    caplog.clear()
    path.rmdir()
    second = create_token(path, "second", ["jobs:read"])  # good again: reloaded
    assert store.lookup(second.token) == second.entry
    assert store.lookup(minted.token) is None
    assert [r.getMessage() for r in caplog.records] == ["tokens file reloaded"]


def test_a_removed_file_holds_no_tokens(tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "tokens.json"
    minted = create_token(path, "ci", ["runs:read"])
    store = TokenStore(path)
    path.unlink()
    assert store.lookup(minted.token) is None
    assert "every token is refused" in caplog.text


def test_a_bad_file_at_start_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text("{")
    with pytest.raises(UsageError, match="not valid JSON"):
        TokenStore(path)


# -- the authenticator -----------------------------------------------------------------------


def test_expired_unknown_and_missing_tokens_are_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    clock = Clock(NOW)
    minted = create_token(path, "ci", ["runs:read"], expires_at=NOW + 60, now=NOW)
    auth = Authenticator(TokenStore(path, clock=clock), dev=False)
    assert auth.authenticate(f"Bearer {minted.token}") == Principal(
        "ci", frozenset({"runs:read"}), minted.entry.id)
    clock.now = NOW + 60
    refused = auth.authenticate(f"Bearer {minted.token}")
    assert isinstance(refused, Refusal) and refused.error == "invalid_token"
    assert refused.detail.startswith("the token expired at 2027-01-15T08:01:00Z")
    assert auth.authenticate("Bearer flwd_nope") == Refusal("unknown or revoked token",
                                                            "invalid_token")
    missing = auth.authenticate(None)
    assert isinstance(missing, Refusal) and missing.error is None
    assert auth.authenticate("Basic abc") == Refusal(
        "malformed Authorization header (expected 'Bearer TOKEN')", "invalid_request")
