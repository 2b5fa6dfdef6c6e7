"""The idempotency digest: keyed per install, the key made once, old plain hashes migrated away."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path

import pytest

from flwd.errors import StorageError
from flwd.store import body_digest, connect, install_key, same_body
from flwd.store._schema import MIGRATIONS

BODY = b'{"args":{"name":"Ops","secret_token":"s3cr3t-9"},"job_id":"demo"}'


def test_the_key_is_made_on_first_use_and_kept(tmp_path: Path) -> None:
    key = install_key(tmp_path / "data")
    path = tmp_path / "data" / "idempotency.key"
    assert len(key) == 32 and path.read_bytes() == key
    assert path.stat().st_mode & 0o777 == 0o600
    assert install_key(tmp_path / "data") == key
    assert sorted(p.name for p in path.parent.iterdir()) == ["idempotency.key"]


def test_processes_racing_to_make_the_key_all_get_the_same_one(tmp_path: Path) -> None:
    keys: list[bytes] = []
    start = threading.Barrier(8)

    def make() -> None:
        start.wait()
        keys.append(install_key(tmp_path))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 8 and len(set(keys)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["idempotency.key"]  # no temporary left


def test_a_damaged_key_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "idempotency.key").write_bytes(b"short")
    with pytest.raises(StorageError) as info:
        install_key(tmp_path)
    assert "idempotency.key is damaged" in info.value.one_line()
    assert "remove the file" in (info.value.hint or "")


def test_the_digest_is_keyed_and_not_the_plain_hash() -> None:
    one, other = b"k" * 32, b"K" * 32
    digest = body_digest(one, BODY)
    assert digest.startswith("hmac-sha256:") and digest == body_digest(one, BODY)
    assert digest != body_digest(other, BODY)
    assert hashlib.sha256(BODY).hexdigest() not in digest
    assert one.hex()[:8] not in digest and other.hex()[:8] not in digest


def test_digests_say_which_install_key_made_them() -> None:
    # Two servers of one Core DB with different idempotency.key files: a digest of the
    # other's is not "another body", it is one that cannot be compared (None).
    one, other = b"k" * 32, b"K" * 32
    digest = body_digest(one, BODY)
    assert same_body(digest, body_digest(one, BODY)) is True
    assert same_body(digest, body_digest(one, BODY + b" ")) is False
    assert same_body(digest, body_digest(other, BODY)) is None
    # A digest stored before key ids (hmac-sha256:<hex>) is compared by its HMAC, as before.
    legacy = digest.partition("@")[0]
    assert same_body(legacy, digest) is True
    assert same_body(legacy, body_digest(one, b"{}")) is False
    assert same_body("unkeyed (before schema 5)", digest) is False


def test_migration_leaves_no_plain_hash_of_an_older_row(tmp_path: Path) -> None:
    path = tmp_path / "flwd.db"
    plain = hashlib.sha256(BODY).hexdigest()
    legacy = sqlite3.connect(path, isolation_level=None)
    legacy.execute("PRAGMA journal_mode = WAL")
    for script in MIGRATIONS[:4]:  # the Core DB as schema 4 left it
        legacy.executescript(script)
    legacy.execute("PRAGMA user_version = 4")
    legacy.execute("INSERT INTO idempotency VALUES ('-:retry-1', ?, 'run-1', 1.0)", (plain,))
    legacy.close()
    assert plain.encode() in path.read_bytes()

    conn = connect(path)
    try:
        (value,) = conn.execute("SELECT body_sha256 FROM idempotency").fetchone()
        # It can never equal a digest: a retry of that request is a 409, not a second run.
        assert not value.startswith("hmac-sha256:")
        # Already gone from the file while the migrating connection is still open.
        files = [p for p in tmp_path.iterdir() if p.name.startswith("flwd.db")]
        assert all(plain.encode() not in p.read_bytes() for p in files)
    finally:
        conn.close()
