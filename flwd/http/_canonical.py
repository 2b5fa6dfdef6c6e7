"""The canonical JSON of a request body, as the Go reference spells it (sans-IO).

A client of the reference (flowd) may send ``Idempotency-SHA256: <hex>`` with
``POST /runs``: the SHA-256 of its body in one spelling (the reference's §8.6).
For flwd to accept the header such a client computes, this module spells a
body exactly as the reference does:

- number literals verbatim, as written (``1.0`` stays ``1.0``, ``1e3`` ``1e3``);
- object keys sorted by their UTF-8 bytes, which is code point order (Python's
  ``str`` order once lone surrogates are gone), not UTF-16 order (JavaScript's,
  where an astral character sorts before U+E000..U+FFFF); a key given twice
  keeps its last value, as Go's decoder does;
- no whitespace; ``true``, ``false``, ``null``;
- strings as Go's ``json.Marshal`` (Go 1.22 and later) writes them: UTF-8 as
  is, ``"`` and ``\\`` escaped, ``\\b \\f \\n \\r \\t`` short, other control
  characters ``\\u00XX`` (lower-case hex), ``< > &`` as ``\\u003c \\u003e
  \\u0026``, U+2028 and U+2029 as ``\\u2028 \\u2029``;
- text that is not Unicode — a lone surrogate escape (``"\\ud800"``), a byte
  that is not UTF-8 — becomes U+FFFD, one per escape or byte, as Go decodes it.

This is not the digest flwd keeps for ``Idempotency-Key`` (an HMAC of its own
canonical form, see ``flwd.store``): the two answer different questions.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: Surrogates (lone ones after decoding; every byte that was not UTF-8, through
#: ``surrogateescape``) are what Go decodes as U+FFFD.
_UNICODE_ONLY = {code: "\ufffd" for code in range(0xD800, 0xE000)}

_STRING_ESCAPES: dict[int, str] = {code: f"\\u{code:04x}" for code in range(0x20)}
_STRING_ESCAPES.update({
    ord("\b"): "\\b", ord("\f"): "\\f", ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t",
    ord('"'): '\\"', ord("\\"): "\\\\",
    ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
    0x2028: "\\u2028", 0x2029: "\\u2029",
    **_UNICODE_ONLY,
})


class _Verbatim(str):
    """Output written as is: punctuation, and number literals."""

    __slots__ = ()


class _Number(_Verbatim):
    """A JSON number (or a NaN/Infinity Python's decoder lets through), as written."""

    __slots__ = ()


_COMMA, _COLON = _Verbatim(","), _Verbatim(":")
_CLOSE_OBJECT, _CLOSE_ARRAY = _Verbatim("}"), _Verbatim("]")


def _members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Keys as Go sees them (two keys that differ only in what is not Unicode are
    # one key there); a repeated key keeps its last value.
    return {key.translate(_UNICODE_ONLY): value for key, value in pairs}


def _string(text: str) -> str:
    return '"' + text.translate(_STRING_ESCAPES) + '"'


def _encode(value: Any) -> str:
    # Iterative: a body nested as deeply as the decoder allows must not
    # exhaust the Python stack here.
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Verbatim):
            out.append(item)
        elif isinstance(item, str):
            out.append(_string(item))
        elif item is None or isinstance(item, bool):
            out.append("null" if item is None else "true" if item else "false")
        elif isinstance(item, dict):
            out.append("{")
            stack.append(_CLOSE_OBJECT)
            keys = sorted(item, reverse=True)  # code point order = UTF-8 byte order
            for index, key in enumerate(keys):
                stack.extend((item[key], _COLON, key))
                if index < len(keys) - 1:
                    stack.append(_COMMA)
        else:  # a list: nothing else comes out of the decoder
            out.append("[")
            stack.append(_CLOSE_ARRAY)
            for index, element in enumerate(reversed(item)):
                stack.append(element)
                if index < len(item) - 1:
                    stack.append(_COMMA)
    return "".join(out)


def canonical_json(raw: bytes) -> bytes:
    """``raw`` (a JSON document) in the reference's canonical spelling.

    Raises:
        ValueError: ``raw`` is not one JSON document (in UTF-8; a leading BOM
            is skipped, as flwd's own decoding of bodies skips it).
    """
    text = raw.decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    try:
        value = json.loads(text, parse_int=_Number, parse_float=_Number,
                           parse_constant=_Number, object_pairs_hook=_members)
    except RecursionError:
        raise ValueError("the document is nested too deeply") from None
    return _encode(value).encode("utf-8")


def canonical_sha256(raw: bytes) -> str:
    """The lower-case hex SHA-256 of :func:`canonical_json` — what ``Idempotency-SHA256``
    must carry (in either case).

    Raises:
        ValueError: as :func:`canonical_json`.
    """
    return hashlib.sha256(canonical_json(raw)).hexdigest()
