"""Reading a hook's shared secret when a request needs it (blocking: a file or the
environment; call :func:`read_secret` from a thread in trio).

Read per request, never kept: a rotated secret file counts from the next request,
and no long-lived object (an index, a listing, a log record) ever holds a secret.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from typing import Final

from ._model import SecretRef
from ._request import Rejected

#: A secret file is a few bytes; a bigger one is not what was meant.
MAX_SECRET_BYTES: Final = 64 * 1024


def secret_problem(ref: SecretRef) -> str | None:
    """Why the secret ``ref`` names cannot be read now (None: it can)."""
    if ref.kind == "env":
        return _decode_problem(ref) if os.environ.get(ref.where) else (
            f"the environment variable {ref.where} is not set (or empty) in the server's "
            "environment")
    try:
        info = os.stat(ref.where)
    except OSError as exc:
        return f"cannot read the secret file {ref.where}: {exc.strerror}"
    if not stat.S_ISREG(info.st_mode):
        return f"the secret file {ref.where} is not a regular file"
    if not 0 < info.st_size <= MAX_SECRET_BYTES:
        return f"the secret file {ref.where} is empty or larger than {MAX_SECRET_BYTES} bytes"
    if not os.access(ref.where, os.R_OK):
        return f"the secret file {ref.where} is not readable by the server"
    return _decode_problem(ref)


def _decode_problem(ref: SecretRef) -> str | None:
    if ref.encoding != "base64":
        return None
    try:
        read_secret(ref)
    except Rejected as exc:
        return exc.detail
    return None


def secret_exposed(ref: SecretRef) -> bool:
    """The secret file may be read by other users than its owner (group or others)."""
    try:
        return bool(os.stat(ref.where).st_mode & 0o077)
    except OSError:
        return False  # gone since: the request that needs it says so


def read_secret(ref: SecretRef) -> bytes:
    """The secret's bytes (a file's trailing line break is not part of it).

    Raises:
        Rejected: ``unavailable``: it cannot be read, or is empty.
    """
    if ref.kind == "env":
        value = os.environb.get(ref.where.encode(), b"")
    else:
        try:
            # O_NONBLOCK: a FIFO put in the file's place must not hang a request.
            fd = os.open(ref.where, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise Rejected("unavailable", f"cannot read the secret file {ref.where}: "
                                          f"{exc.strerror}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise Rejected("unavailable", f"the secret file {ref.where} is not a regular file")
        with os.fdopen(fd, "rb") as file:
            value = file.read(MAX_SECRET_BYTES + 1)
        if len(value) > MAX_SECRET_BYTES:
            raise Rejected("unavailable", f"the secret file {ref.where} is larger than "
                                          f"{MAX_SECRET_BYTES} bytes")
        value = value.rstrip(b"\r\n")
    if ref.encoding == "base64":
        value = _decoded(ref, value)
    if not value:
        raise Rejected("unavailable", f"the secret ({ref}) is empty")
    return value


def _decoded(ref: SecretRef, text: bytes) -> bytes:
    encoded = text.strip()
    encoded = encoded.removeprefix(b"whsec_")  # Standard Webhooks' (and Svix's) prefix
    try:
        return base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error):
        raise Rejected("unavailable", f"the secret ({ref}) is not base64 (secret_encoding: "
                                      "base64)") from None
