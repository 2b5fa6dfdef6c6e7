"""Reading a sink's secrets when it delivers (blocking; call from a worker thread).

A rule names where a secret is — a file (``secret_file``, ``credentials_file``) or a
variable of the flwd process (``secret_env``, ``url_env``) — and it is read for each
attempt, so a rotated secret is used at once and none is kept in memory between
deliveries. A file must be a regular file of flwd's own user that nobody else may
read or write (mode 0600 or stricter), as ssh asks of a key: a secret any local user
can read is no secret. What goes wrong is said without the secret (:class:`SecretUnavailable`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

#: A secret file is read up to this many bytes (a key or a password, not a document).
MAX_SECRET_BYTES = 64 * 1024


class SecretUnavailable(Exception):
    """A sink's secret cannot be had; the message names where it was looked for, never
    what it holds. Retrying does not help: the configuration or the file must change."""


def secret_path(text: str, workspace: Path) -> Path:
    """Where a rule's file is: ``~`` is expanded; a relative path is in the workspace
    (the folder holding scripts/, where runs start)."""
    path = Path(text).expanduser()
    return path if path.is_absolute() else workspace / path


def read_secret_file(text: str, workspace: Path) -> bytes:
    """The bytes of a secret file, without the line break that ends it.

    Raises:
        SecretUnavailable: missing, not a regular file, not flwd's user's, readable or
            writable by others, empty, or too large.
    """
    path = secret_path(text, workspace)
    try:
        # O_NOFOLLOW: the file itself is checked, not where a link points;
        # O_NONBLOCK: a FIFO in its place cannot hang the delivery.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise SecretUnavailable(f"cannot open {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SecretUnavailable(f"{path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise SecretUnavailable(f"{path} belongs to another user (uid {info.st_uid}); "
                                    "a secret file must be flwd's own")
        if info.st_mode & 0o077:
            raise SecretUnavailable(
                f"{path} is open to other users (mode {stat.S_IMODE(info.st_mode):04o}): "
                f"run 'chmod 600 {path}'")
        data = file.read(MAX_SECRET_BYTES + 1)
    if len(data) > MAX_SECRET_BYTES:
        raise SecretUnavailable(f"{path} is larger than {MAX_SECRET_BYTES // 1024} KiB")
    data = data.removesuffix(b"\n").removesuffix(b"\r")
    if not data:
        raise SecretUnavailable(f"{path} is empty")
    return data


def read_env(name: str, environ: Mapping[str, str]) -> str:
    """A variable of the flwd process.

    Raises:
        SecretUnavailable: it is not set, or empty.
    """
    value = environ.get(name)
    if not value:
        raise SecretUnavailable(f"the environment variable {name} is not set in the flwd "
                                "process")
    return value


def read_credentials(text: str, workspace: Path) -> tuple[str, str]:
    """(user, password) of a credentials file: one line ``USER:PASSWORD``.

    Raises:
        SecretUnavailable: as :func:`read_secret_file`, or not ``USER:PASSWORD``.
    """
    data = read_secret_file(text, workspace)
    try:
        line = data.decode("utf-8").splitlines()[0]
    except (UnicodeDecodeError, IndexError):
        line = ""
    user, colon, password = line.partition(":")
    if not colon or not user or not password:
        raise SecretUnavailable(f"{secret_path(text, workspace)} must hold one line "
                                "USER:PASSWORD")
    return user, password
