"""KV values, cursors, limits and times as the reference puts them on the wire (sans-IO).

Values travel as standard base64 (RFC 4648 §4, padded) in JSON; a list cursor is
the base64 of the last key returned; times are RFC 3339 in UTC with the fraction
trimmed of its trailing zeros, as Go's ``time.RFC3339Nano`` prints them.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from flwd.errors import (
    KvCursorInvalid,
    KvKeyNotText,
    KvLimitInvalid,
    KvValueNotBase64,
    KvValueTooLong,
)
from flwd.store import MAX_KEY_BYTES, MAX_VALUE_BYTES, KvItem

#: The most entries one list answers (also its default), as the reference.
MAX_LIMIT = 256
#: The base64 length of the longest value: longer text is refused before decoding.
_MAX_VALUE_TEXT = -(-MAX_VALUE_BYTES // 3) * 4


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _decode(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not a string")
    # validate=True: only the alphabet and correct padding (no whitespace, no '-_').
    return base64.b64decode(text, validate=True)


def decode_value(text: object) -> bytes:
    """The bytes of a JSON ``value``.

    Raises:
        KvValueNotBase64: it is not a string of standard base64.
        KvValueTooLong: it decodes to more than 8 KiB (refused before decoding when
            the text alone is too long).
    """
    if isinstance(text, str) and len(text) > _MAX_VALUE_TEXT:
        raise KvValueTooLong(f"the value's base64 is {len(text)} characters long; at most "
                             f"{_MAX_VALUE_TEXT} ({MAX_VALUE_BYTES // 1024} KiB decoded) "
                             "are allowed")
    try:
        return _decode(text)
    except (ValueError, binascii.Error):
        kind = "a string" if isinstance(text, str) else f"a JSON {_json_type(text)}"
        raise KvValueNotBase64(
            f"the value must be standard base64 text (got {kind} that is not)",
            hint='send {"value": "<base64>"}, e.g. "aGVsbG8=" for "hello"') from None


def decode_cursor(text: str) -> bytes:
    """The key a list ``cursor`` names (the ``nextCursor`` of the page before).

    Raises:
        KvCursorInvalid: it is not base64, or longer than any key.
    """
    try:
        key = _decode(text)
    except (ValueError, binascii.Error):
        raise KvCursorInvalid("cursor must be the standard base64 of a key",
                              hint="pass back the nextCursor of the previous page") from None
    if len(key) > MAX_KEY_BYTES:
        raise KvCursorInvalid(f"the cursor names a key of {len(key)} bytes; keys have at "
                              f"most {MAX_KEY_BYTES}",
                              hint="pass back the nextCursor of the previous page")
    return key


def parse_limit(text: str | None) -> int:
    """A list's ``limit``: 1 or more (more than :data:`MAX_LIMIT` answers that many);
    absent or empty is :data:`MAX_LIMIT`.

    Raises:
        KvLimitInvalid: not a positive integer.
    """
    if text is None or text == "":
        return MAX_LIMIT
    digits = text.strip()
    significant = digits.lstrip("0")
    if not (digits.isascii() and digits.isdigit() and significant):
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise KvLimitInvalid(f"limit must be a positive integer (got {shown!r})",
                             hint=f"at most {MAX_LIMIT} entries come back per page")
    # Any number of digits is a number; more than three is above the page size (and is
    # never converted: int() of thousands of digits is slow, and refused past 4300).
    return MAX_LIMIT if len(significant) > 3 else min(int(significant), MAX_LIMIT)


def key_text(key: str, what: str = "key") -> bytes:
    """A key (or a prefix) given as text, as the bytes it is stored under (UTF-8).

    Raises:
        KvKeyNotText: it holds what UTF-8 cannot encode (a lone surrogate: bytes that
            were not UTF-8 where it came from).
    """
    try:
        return key.encode("utf-8")
    except UnicodeEncodeError:
        raise KvKeyNotText(f"the {what} is not UTF-8 text",
                           hint=f"a {what} is shown as JSON text: use UTF-8") from None


def format_timestamp(updated_ms: int) -> str:
    """``updated_ms`` as Go's RFC3339Nano prints it: ``2025-01-02T03:04:05.12Z``."""
    seconds, millis = divmod(updated_ms, 1000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{millis:03d}".rstrip("0")
    return f"{stamp}.{fraction}Z" if fraction else f"{stamp}Z"


def item_document(item: KvItem) -> dict[str, Any]:
    """``{"key", "value", "timestamp"}`` as ``GET /kv/NS/KEY`` answers it."""
    return {"key": item.key.decode("utf-8", "replace"), "value": encode(item.value),
            "timestamp": format_timestamp(item.updated_ms)}


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
