"""Run ids: ``run-`` + a ULID (time-sortable, unique across processes)."""

from __future__ import annotations

import os
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid() -> str:
    """48 bits of milliseconds + 80 random bits, Crockford base32 (26 characters)."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_run_id() -> str:
    return f"run-{new_ulid()}"
