"""A request → the job's arguments, as a hook's ``args:`` maps them (sans-IO).

The result is only a JSON object of candidate values: the job's argspec judges it
exactly as it judges ``POST /runs`` (a value that is missing, of the wrong type or
out of range is a 422 naming the argument). The body is parsed only when an
argument is taken from it: as JSON, or, for a form (GitHub's
``application/x-www-form-urlencoded`` deliveries), as the JSON of its ``payload``
field.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import parse_qs

from ._model import Hook
from ._request import Inbound, Rejected

_MISSING: Final = object()
_FORM: Final = "application/x-www-form-urlencoded"
#: Fields a form body may have (GitHub sends one): more is not a webhook.
_MAX_FORM_FIELDS: Final = 100


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected("request", f"the body is not UTF-8 text (byte {exc.start})") from None


def _form_payload(text: str) -> str | None:
    """The ``payload`` field of a URL-encoded form; None when ``text`` is not a form
    with exactly one (a client that labels JSON as a form: curl's ``--data``)."""
    try:
        fields = parse_qs(text, keep_blank_values=True, strict_parsing=True,
                          max_num_fields=_MAX_FORM_FIELDS, errors="strict")
    except ValueError:
        return None
    payloads = fields.get("payload", [])
    return payloads[0] if len(payloads) == 1 else None


def parse_body(inbound: Inbound) -> Any:
    """The request's body as JSON (for a form, the JSON of its ``payload`` field).

    Raises:
        Rejected: ``request``: empty, not UTF-8, not JSON.
    """
    text = _text(inbound.body)
    form = inbound.content_type == _FORM
    if form:
        text = _form_payload(text) or text
    if not text.strip():
        raise Rejected("request", "the body is empty: the hook maps arguments from a "
                                  "JSON body")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        # The parser's message gives a position, never the text around it.
        what = "JSON, nor a form with a 'payload' field of JSON" if form else "valid JSON"
        raise Rejected("request", f"the body is not {what}: {str(exc)[:120]}") from None


def resolve(document: Any, path: Sequence[str]) -> Any:
    """The value at ``path`` (a JSON pointer's tokens, or a dotted path's parts) in
    ``document``; :data:`_MISSING` when there is none."""
    value = document
    for token in path:
        if isinstance(value, dict):
            if token not in value:
                return _MISSING
            value = value[token]
        elif isinstance(value, list):
            # RFC 6901: an index is digits without a leading zero.
            if not token.isdigit() or (token != "0" and token.startswith("0")) \
                    or int(token) >= len(value):
                return _MISSING
            value = value[int(token)]
        else:
            return _MISSING
    return value


def map_args(hook: Hook, inbound: Inbound) -> dict[str, Any]:
    """The arguments ``hook`` takes from the request: a value that is not there is left
    out (the argspec's default, or its ``required`` error, applies).

    Raises:
        Rejected: ``request``: the body cannot be read as JSON while an argument
            comes from it.
    """
    args: dict[str, Any] = {}
    document: Any = _MISSING
    for name, source in hook.args.items():
        value: Any = _MISSING
        if source.kind == "value":
            value = copy.deepcopy(source.value)
        elif source.kind == "query":
            value = inbound.query.get(source.text, _MISSING)
        elif source.kind == "header":
            values = inbound.header_values(source.text)
            # Several fields of one name are one list (RFC 9110 §5.3).
            value = ", ".join(values) if values else _MISSING
        else:
            if document is _MISSING:
                document = parse_body(inbound)
            value = resolve(document, source.path)
        if value is not _MISSING:
            args[name] = value
    return args
