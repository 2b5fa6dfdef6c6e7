"""The ``__complete`` wire format: one JSON object per candidate and line.

``{"insert": "...", "display": "...", "type": "segment"|"flag"|"value"}``, in this
key order, UTF-8, no trailing directive line (reference §14.1). The shell scripts
rely on the key order and on ``": "`` between key and value.

One more type, beyond the reference: ``"file"`` — a file path goes here (after
``--api_key-file``), so the shell completes it with its own file completion, which
knows directories, quoting and ``~``. It comes alone; its ``insert`` is the word as
typed (a client that does not know the type leaves the word as it is), the path
being the text after the first ``=`` of an ``--flag=`` word.
"""

from __future__ import annotations

try:  # the C string encoder of the json package, without importing json (and re)
    from _json import encode_basestring as _quote
except ImportError:  # pragma: no cover - interpreters without the C accelerator
    from json.encoder import py_encode_basestring as _quote

#: ``(insert, display, type)``.
Candidate = tuple[str, str, str]


def encode(candidates: list[Candidate]) -> str:
    """NDJSON lines for ``candidates`` (empty for none)."""
    return "".join(
        f'{{"insert": {_quote(insert)}, "display": {_quote(display)}, "type": "{kind}"}}\n'
        for insert, display, kind in candidates
    )
