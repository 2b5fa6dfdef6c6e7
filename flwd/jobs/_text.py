"""Which argument text flwd refuses at the edge, and how it is named without echoing it.

A job's arguments end up in a process's argv and environment, in files and in
the Core DB (UTF-8 text). Two kinds of string cannot get there intact:

- a NUL character: the kernel cuts argv, environment strings and file names at
  the first NUL, so the process would see another value than the one given;
- a lone UTF-16 surrogate (U+D800–U+DFFF): not a Unicode character, so it has
  no UTF-8 encoding. JSON can smuggle one in (``"\\udc80"``), and Python decodes
  a command-line argument that is not valid UTF-8 into them (``surrogateescape``:
  byte 0xE9 becomes U+DCE9), which is how they are told apart here.

Sans-IO; the binding (:mod:`flwd.jobs._bind`) reports what this finds as an
argument problem, so both the CLI (one line, exit 2) and the HTTP API (422 with
``errors[{arg, message}]``) name the argument.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["printable", "text_problem", "value_problem"]

_REFUSED: Final = re.compile("[\x00\ud800-\udfff]")
#: ``surrogateescape`` maps an undecodable byte 0x80–0xFF to U+DC80–U+DCFF.
_ESCAPED_BYTES: Final = range(0xDC80, 0xDD00)


def text_problem(text: str, *, argv: bool = False, secret: bool = False) -> str | None:
    """Why ``text`` cannot be an argument value (a phrase after the argument's name), or None.

    ``argv``: the text came from the command line, where a surrogate stands for
    a byte that is not UTF-8. ``secret``: say what is wrong without showing any
    character of the value.
    """
    found = _REFUSED.search(text)
    if found is None:
        return None
    code = ord(found.group())
    if code == 0:
        return ("contains a NUL character (U+0000), which no process argument, environment "
                "variable or file can carry")
    if argv and code in _ESCAPED_BYTES:
        byte = "" if secret else f" (byte 0x{code - 0xDC00:02X})"
        return f"is not valid UTF-8{byte}; pass the text in UTF-8"
    where = "" if secret else f" (U+{code:04X})"
    return f"contains a lone UTF-16 surrogate{where}, which is not text"


def value_problem(value: Any, *, secret: bool = False) -> str | None:
    """:func:`text_problem` for a decoded JSON value: every string, key and nested item.

    The phrase says where the text is (``item 2: …``, ``value of 'env': …``, ``a key …``).
    """
    # Iterative: a deeply nested value must not exhaust the stack here.
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        current, where = stack.pop()
        if isinstance(current, str):
            problem = text_problem(current, secret=secret)
            if problem is not None:
                return f"{where}{problem}"
        elif isinstance(current, Mapping):
            for key, item in reversed(list(current.items())):
                if isinstance(key, str) and (problem := text_problem(key, secret=secret)):
                    return f"{where}a key {problem}"
                stack.append((item, f"{where}value of '{_clip(str(key))}': "))
        elif isinstance(current, list | tuple):
            for index in reversed(range(len(current))):
                stack.append((current[index], f"{where}item {index + 1}: "))
    return None


def printable(text: str, *, argv: bool = False) -> str:
    """``text`` safe to put in a message: refused characters as escapes.

    ``argv``: show the bytes that were not UTF-8 as bytes (``caf\\xe9``); else a
    surrogate reads ``\\udc80`` and a NUL ``\\x00``.
    """
    if _REFUSED.search(text) is None:
        return text
    escaped = text.replace("\x00", "\\x00")
    if argv:
        try:
            return escaped.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            pass  # a surrogate that is no escaped byte: shown as one
    return escaped.encode("utf-8", "backslashreplace").decode("utf-8")


def _clip(text: str) -> str:
    return text if len(text) <= 40 else text[:39] + "…"
