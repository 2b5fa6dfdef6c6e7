"""JSON for the thin client on the interpreter's C accelerator alone (sans-IO).

``import json`` costs the thin client ~12 ms of its ~25 (json.decoder imports ``re``,
and ``re`` imports ``enum``): more than everything else it does before it talks to the
server. The decoding and the string escaping it needs are in ``_json``, the C module
``json`` itself uses: these are the same functions, without the modules around them.
:func:`loads` takes what :func:`json.loads` takes (a malformed document raises
``ValueError``); :func:`dumps` writes what :func:`json.dumps` writes for the values the
client sends (``ensure_ascii``, ``", "`` and ``": "`` separators).
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False  # not typing's: the thin client does not import typing
if TYPE_CHECKING:
    from typing import ClassVar

__all__ = ["dumps", "loads"]


def _constant(name: str) -> float:
    return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


class _Context:
    # What ``_json.make_scanner`` reads of a json.JSONDecoder: its defaults.
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_constant)
    memo: ClassVar[dict[str, str]] = {}


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # duck-typed
_WHITESPACE = " \t\n\r"


def loads(text: str | bytes) -> object:
    """The value of the JSON document ``text``.

    Raises:
        ValueError: not one JSON document.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(str(exc)) from None
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration:
        raise ValueError("not a JSON document") from None
    except Exception as exc:  # json.JSONDecodeError, RecursionError…
        raise ValueError(str(exc)) from None
    finally:
        _Context.memo.clear()
    if text[end:].strip(_WHITESPACE):
        raise ValueError("more than one JSON document")
    return value


def dumps(value: object) -> str:
    """``value`` (None, bools, ints, strings, lists, tuples and dicts of them, string
    keys) as :func:`json.dumps` writes it.

    Raises:
        TypeError: something else.
    """
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return int.__repr__(value)
    if isinstance(value, str):
        return _json.encode_basestring_ascii(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(dumps(item) for item in value) + "]"
    if isinstance(value, dict):
        parts = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"a key that is not a string: {key!r}")
            parts.append(_json.encode_basestring_ascii(key) + ": " + dumps(item))
        return "{" + ", ".join(parts) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
