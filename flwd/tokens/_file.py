"""The tokens file: reading it strictly, and changing it atomically under a lock (blocking).

The file is JSON, ``{"tokens": [{"name", "sha256", "scopes", "created_at", "expires_at"?}]}``.
Every change (create, revoke) runs under an exclusive ``flock`` of ``FILE.lock`` and
reads the file again inside it, so two ``flwd :tokens create`` at once both land;
the new text goes to a temporary file in the same directory (0600), is fsynced and
renamed over the old one, so a reader — ``flwd :serve`` reloading it — sees the old
file or the new one, never half of either, and a crash or a full disk loses nothing.
Entries and keys this version does not know are written back unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import stat
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flwd.errors import UsageError

from ._expiry import format_time, parse_time
from ._model import TOKEN_PREFIX, TokenEntry, check_name, check_scopes, digest

#: A tokens file is small (one entry is ~200 bytes); a bigger one is refused unread.
MAX_FILE_BYTES = 4 * 1024 * 1024
#: How long a change waits for another process's change to finish.
LOCK_TIMEOUT = 10.0

#: What identifies one version of the file cheaply: device, inode, size, mtime, ctime (ns).
Signature = tuple[int, int, int, int, int]


def signature_of(info: os.stat_result) -> Signature:
    # The inode changes with every rename-into-place; size and the times catch an
    # in-place edit; ctime also catches a chmod that makes the file unreadable.
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


@dataclass(frozen=True, slots=True)
class TokensSnapshot:
    """One version of the tokens file, parsed."""

    entries: tuple[TokenEntry, ...]
    #: The file's items as read, written back unchanged by a create or revoke.
    items: tuple[dict[str, Any], ...]
    #: The file's other top-level keys, kept as well.
    extra: dict[str, Any]
    #: The version read; None: the file does not exist.
    signature: Signature | None


_EMPTY = TokensSnapshot((), (), {}, None)


def _open_regular(path: Path) -> int | None:
    """A read-only descriptor of ``path`` if it is a regular file; None if it is missing."""
    try:
        # O_NONBLOCK: a FIFO in the file's place must not hang the reader.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"cannot read tokens file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UsageError(f"cannot read tokens file {path}: not a regular file")
    return fd


def read_tokens(path: Path) -> TokensSnapshot:
    """The tokens file at ``path``; a missing file has no tokens.

    Raises:
        UsageError: the file cannot be read, is too big, or is not valid JSON of the
            expected shape (the message names the file and the first bad entry).
    """
    fd = _open_regular(path)
    if fd is None:
        return _EMPTY
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())  # the version actually read, even if renamed over since
        if info.st_size > MAX_FILE_BYTES:
            raise UsageError(f"tokens file {path} is too big ({info.st_size} bytes; "
                             f"at most {MAX_FILE_BYTES})")
        try:
            data = f.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise UsageError(f"cannot read tokens file {path}: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise UsageError(f"tokens file {path} is too big (more than {MAX_FILE_BYTES} bytes)")
    hint = "fix it, or recreate it with 'flwd :tokens create'"
    try:
        document = json.loads(data)
    except ValueError as exc:
        # json's messages give a position, never the text around it.
        raise UsageError(f"tokens file {path} is not valid JSON: {exc}", hint=hint) from None
    if not isinstance(document, dict) or not isinstance(document.get("tokens"), list):
        raise UsageError(f"tokens file {path} is malformed: expected {{\"tokens\": [...]}}",
                         hint=hint)
    items = document["tokens"]
    entries = []
    for index, item in enumerate(items):
        try:
            entries.append(_entry(item))
        except (KeyError, TypeError, ValueError, OverflowError, UsageError) as exc:
            reason = exc.one_line() if isinstance(exc, UsageError) else (
                f"missing {exc}" if isinstance(exc, KeyError) else str(exc)[:200])
            raise UsageError(f"tokens file {path} is malformed: tokens[{index}]: {reason}",
                             hint=hint) from None
    names = [entry.name for entry in entries]
    if len(set(names)) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise UsageError(f"tokens file {path} is malformed: the name '{twice[:64]}' is "
                         "used twice", hint="names must be unique; remove one of them")
    extra = {key: value for key, value in document.items() if key != "tokens"}
    return TokensSnapshot(tuple(entries), tuple(items), extra, signature_of(info))


def _entry(item: Any) -> TokenEntry:
    if not isinstance(item, dict):
        raise TypeError("not an object")
    sha = item["sha256"]
    if not isinstance(sha, str) or len(sha) != 64 or any(
            c not in "0123456789abcdef" for c in sha.lower()):
        raise ValueError("sha256 is not a SHA-256 hex digest")
    name = item["name"]
    if not isinstance(name, str) or not name:
        raise ValueError("name is not a non-empty string")
    scopes = item["scopes"]
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise ValueError("scopes is not a list of strings")
    created = item.get("created_at")
    expires = item.get("expires_at")
    if expires is not None and not isinstance(expires, str):
        raise ValueError("expires_at is not a time such as 2027-01-01T00:00:00Z")
    try:
        expires_at = None if expires is None else parse_time(expires)
    except ValueError:
        raise ValueError("expires_at is not a time such as 2027-01-01T00:00:00Z") from None
    return TokenEntry(name, sha.lower(), frozenset(check_scopes(scopes)),
                      created_at=str(created)[:40] if created is not None else None,
                      expires_at=expires_at)


def load_tokens(path: Path) -> list[TokenEntry]:
    """The entries of the tokens file (see :func:`read_tokens`)."""
    return list(read_tokens(path).entries)


# -- changes -----------------------------------------------------------------------------


def _target(path: Path) -> Path:
    # Write through a symlink (the link keeps pointing at the file) instead of
    # replacing the link with a regular file.
    return Path(os.path.realpath(path))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``path``'s changes (``PATH.lock``, kept: deleting a lock
    file while another process waits on it would let two changes run at once)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise UsageError(f"cannot lock tokens file {path}: {exc.strerror} ({lock})") from None
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise UsageError(f"tokens file {path} is being changed by another process",
                                     hint=f"try again; if it persists, check what holds {lock}"
                                     ) from None
                time.sleep(0.01)  # a change takes milliseconds; polling keeps a deadline
        yield
    finally:
        os.close(fd)  # releases the lock


def _write(path: Path, items: Sequence[dict[str, Any]], extra: dict[str, Any]) -> None:
    """Replace ``path`` with the new document atomically (temporary file, fsync, rename)."""
    text = json.dumps({**extra, "tokens": list(items)}, indent=2) + "\n"
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                         dir=path.parent)
    except OSError as exc:
        raise UsageError(f"cannot write tokens file {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(exc, OSError):
            reason = "no space left" if exc.errno in (errno.ENOSPC, errno.EFBIG) else (
                exc.strerror or type(exc).__name__)
            raise UsageError(f"cannot write tokens file {path}: {reason}",
                             hint="it was left as it was") from None
        raise
    # The rename itself must survive a power cut too.
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@dataclass(frozen=True, slots=True)
class MintedToken:
    """A token just created: ``token`` is the secret, shown once and stored nowhere."""

    token: str
    entry: TokenEntry


def create_token(path: Path, name: str, scopes: Sequence[str], *,
                 expires_at: float | None = None, now: float | None = None) -> MintedToken:
    """Mint a token and add its digest to the tokens file at ``path`` (created 0600).

    Raises:
        UsageError: a bad name or scope, no scope, an expiry not after ``now``, a name
            already in the file, a malformed file, or the file cannot be written.
    """
    check_name(name)
    granted = check_scopes(scopes)
    if not granted:
        raise UsageError("a token needs at least one --scope", hint="e.g. --scope runs:read")
    now = time.time() if now is None else now
    if expires_at is not None and expires_at <= now:
        raise UsageError("the expiry is in the past", hint=f"it is {format_time(now)} now")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    item: dict[str, Any] = {"name": name, "sha256": digest(token), "scopes": granted,
                            "created_at": format_time(now)}
    if expires_at is not None:
        item["expires_at"] = format_time(expires_at)
    target = _target(path)
    with _locked(target):
        current = read_tokens(target)
        if any(entry.name == name for entry in current.entries):
            raise UsageError(f"a token named '{name}' already exists in {path}",
                             hint="pick another --name, or revoke it first with "
                                  f"'flwd :tokens revoke {name}'")
        _write(target, [*current.items, item], current.extra)
    return MintedToken(token, _entry(item))


def revoke_token(path: Path, name: str) -> TokenEntry:
    """Remove the token called ``name`` from the tokens file; returns what was removed.

    Raises:
        UsageError: no such token, a malformed file, or the file cannot be written.
    """
    target = _target(path)
    shown = name if len(name) <= 64 else name[:64] + "…"
    missing = UsageError(f"no token named '{shown}' in {path}", hint="see 'flwd :tokens list'")
    if read_tokens(target).signature is None:
        raise missing  # no file: nothing to lock (nor a lock file to leave behind)
    with _locked(target):
        current = read_tokens(target)
        for index, entry in enumerate(current.entries):
            if entry.name == name:
                items = [item for i, item in enumerate(current.items) if i != index]
                _write(target, items, current.extra)
                return entry
    raise missing
