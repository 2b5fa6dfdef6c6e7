"""Keyed digests of idempotent request bodies (blocking, small).

``POST /runs`` with an ``Idempotency-Key`` remembers a digest of the request
body, to tell a retry (same body: the same run) from a reuse of the key (a
different body: 409). The body may hold a secret argument, and a plain SHA-256
of it would let anyone who reads the Core DB — or a backup of it — confirm a
guess of the secret offline. So the digest is an HMAC-SHA256 under a key of
this install, kept outside the database in ``<data dir>/idempotency.key``
(32 random bytes, 0600, made on first use).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from flwd.errors import StorageError

#: How long a key is held: a request with a key whose record is older is a new
#: request, and its record replaces the old one (``append_groups``).
IDEMPOTENCY_TTL = 24 * 3600.0
KEY_FILE = "idempotency.key"
KEY_BYTES = 32
#: Marks a stored digest as keyed. Rows written before it (a plain SHA-256) were
#: rewritten by the 4 -> 5 migration so that they can never match one.
DIGEST_PREFIX = "hmac-sha256:"


#: Between a digest and the id of the key that made it.
_KEY_ID_MARK = "@"


def body_digest(key: bytes, canonical_body: bytes) -> str:
    """What the Core DB keeps of a request body: ``hmac-sha256:<hex>@<key id>`` under
    ``key`` (the id says which install key made it: see :func:`same_body`)."""
    return (DIGEST_PREFIX + hmac.new(key, canonical_body, hashlib.sha256).hexdigest()
            + _KEY_ID_MARK + _key_id(key))


def _key_id(key: bytes) -> str:
    # An HMAC of a fixed text: it names the key and tells nothing of it.
    return hmac.new(key, b"flwd idempotency key id", hashlib.sha256).hexdigest()[:16]


def same_body(stored: str, digest: str) -> bool | None:
    """Whether a stored digest and a request's (:func:`body_digest`) are of one body.

    None when they cannot be compared: ``stored`` was made with another install key —
    by a server of the same Core DB whose data dir holds another ``idempotency.key``.
    A digest stored before key ids were added (``hmac-sha256:<hex>``) is compared by
    its HMAC alone, as it was.
    """
    stored_mac, _, stored_id = stored.partition(_KEY_ID_MARK)
    mac, _, key_id = digest.partition(_KEY_ID_MARK)
    if stored_id and key_id and stored_id != key_id:
        return None
    return hmac.compare_digest(stored_mac, mac)


def install_key(data_dir: Path) -> bytes:
    """The install's idempotency key, ``<data_dir>/idempotency.key``; made on first use.

    Made atomically: the key is written and synced under a temporary name,
    then hard-linked to its name, which fails if another process was first
    (its key is then the one read). No reader sees a half-written key, and
    two processes never use two keys.

    Raises:
        StorageError: the file cannot be read or made, or does not hold a key.
    """
    path = data_dir / KEY_FILE
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise _unusable(path, exc) from exc
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = data_dir / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(KEY_BYTES))
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass  # another process made it first: use that one
        finally:
            temporary.unlink(missing_ok=True)
        _sync_dir(data_dir)
        return _read_key(path)
    except OSError as exc:
        raise _unusable(path, exc) from exc


def _read_key(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        key = f.read(KEY_BYTES + 1)
    if len(key) != KEY_BYTES:
        raise StorageError(
            f"the idempotency key {path} is damaged: it holds {len(key)} bytes, "
            f"not {KEY_BYTES}",
            hint="remove the file and flwd makes a new key (an Idempotency-Key used in "
                 "the last 24 h then answers 409 instead of its run)")
    return key


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unusable(path: Path, exc: OSError) -> StorageError:
    return StorageError(f"cannot use the idempotency key {path}: {exc.strerror or exc}",
                        hint="check the data dir's permissions and free space (--data-dir)")
