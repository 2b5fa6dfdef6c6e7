"""Rule-Y KV: ``GET|PUT|DELETE /kv/{namespace}/{key…}`` and ``GET /kv/{namespace}``.

As the reference answers them (its §15.4): the key is everything after the
namespace's ``/`` (it may hold ``/``), a value travels as ``{"value": base64}``,
a list pages with ``prefix``, ``cursor`` (the ``nextCursor`` of the page before)
and ``limit``. The checks come in its order: the namespace (403), the key (400),
the body and its value (400, 413), the quota (429).

The namespace and key are read from the raw path, percent-decoded here: a
``%2F`` is a character of the key rather than a separator, and a key that is not
UTF-8 is refused instead of having its bytes replaced.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from quart import Blueprint, Response, g, jsonify, request
from werkzeug.routing import BaseConverter

from flwd.errors import KvKeyNotText, KvKeyRequired
from flwd.kv import decode_cursor, decode_value, item_document, parse_limit

from ._problems import HttpProblem
from ._state import current_state

blueprint = Blueprint("kv", __name__)

#: The largest PUT body: a value's base64 (at most 10 924 characters) and some room.
MAX_KV_BODY = 64 * 1024
#: At most this many query parameters on a list (one of each is used).
_MAX_FIELDS = 16
_PREFIX = b"/kv/"


class KvPath(BaseConverter):
    """``NAMESPACE[/KEY…]`` after ``/kv/``: any characters, '/' included (or none)."""

    regex = r"[\s\S]*"  # not ".": a key may hold a line break (%0A)
    part_isolating = False


class KvKey(BaseConverter):
    """A key: the rest of the path after the namespace, '/' included, not empty."""

    regex = r"[\s\S]+"
    part_isolating = False


# GET reads an entry or lists a namespace: one rule for every path under /kv/ (the
# handler tells them apart, and answers a bad path with a problem). PUT and DELETE
# exist on keys only: on /kv/NS they are 405 (Allow: GET), as the API document says.
# merge_slashes=False: a key may hold "//" and must not be redirected to another key.
_READ_RULE = "/kv/<kvpath:path>"
_KEY_RULE = "/kv/<namespace>/<kvkey:key>"


@blueprint.get(_READ_RULE, merge_slashes=False)
async def read_kv(path: str) -> Response:
    """``GET /kv/NS/KEY``: the entry; ``GET /kv/NS``: a page of entries.

    Cancellation: nothing is left behind (it only reads).
    """
    namespace, raw_key = _target(path)
    engine = current_state().engine
    engine.kv_check(namespace)
    if not raw_key:  # /kv/NS or /kv/NS/: the namespace's entries
        query = _query()
        limit = parse_limit(query.get("limit"))
        cursor = query.get("cursor")
        page = await engine.kv_list(namespace, prefix=query.get("prefix", ""),
                                    cursor=decode_cursor(cursor) if cursor else None,
                                    limit=limit)
        return jsonify(page.document())
    item = await engine.kv_get(namespace, _key(raw_key))
    return jsonify(item_document(item))


@blueprint.put(_KEY_RULE, merge_slashes=False)
async def put_kv(namespace: str, key: str) -> Response:
    """``PUT /kv/NS/KEY`` with ``{"value": base64}``: 204.

    Cancellation: once the put is handed to its thread it commits (or not, as one
    transaction) all the same; only the answer is lost.
    """
    namespace, raw_key = _target(f"{namespace}/{key}")
    engine = current_state().engine
    engine.kv_check(namespace)
    key = _key(raw_key)
    engine.kv_check(namespace, key)  # an empty or too long key before the body is read
    value = decode_value(_value_field(await _body()))
    await engine.kv_put(namespace, key, value)
    return Response("", status=204)


@blueprint.delete(_KEY_RULE, merge_slashes=False)
async def delete_kv(namespace: str, key: str) -> Response:
    """``DELETE /kv/NS/KEY``: 204, or 404 ``key not found``.

    Cancellation: as ``put_kv``: the delete may be committed, the answer lost.
    """
    namespace, raw_key = _target(f"{namespace}/{key}")
    engine = current_state().engine
    engine.kv_check(namespace)
    await engine.kv_delete(namespace, _key(raw_key))
    return Response("", status=204)


# -- reading the request ----------------------------------------------------------
def _target(path: str) -> tuple[str, bytes | None]:
    """(the namespace, the percent-decoded key bytes; None when the path has no key)."""
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes) and raw.startswith(_PREFIX):
        rest = raw[len(_PREFIX):]
    else:  # a server without raw_path: the decoded path is all there is
        rest = path.encode("utf-8", "surrogateescape")
    namespace_part, slash, key_part = rest.partition(b"/")
    namespace = unquote_to_bytes(namespace_part).decode("utf-8", "replace")
    if not namespace:
        raise HttpProblem(400, "invalid path",
                          "namespace required: the path is /kv/NAMESPACE[/KEY]",
                          code="kv.namespace.required")
    return namespace, unquote_to_bytes(key_part) if slash else None


def _key(raw: bytes | None) -> str:
    if not raw:
        raise KvKeyRequired("the path names no key: /kv/NAMESPACE/KEY",
                            hint="GET /kv/NAMESPACE lists the keys")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise KvKeyNotText("the key is not UTF-8 text (after percent-decoding)",
                           hint="a key is shown as JSON text: use UTF-8") from None


def _query() -> dict[str, str]:
    """The first value of each query parameter, strictly decoded (UTF-8, bounded)."""
    raw = request.scope.get("query_string", b"")
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, encoding="utf-8",
                          errors="strict", max_num_fields=_MAX_FIELDS)
    except ValueError:  # UnicodeDecodeError too
        raise HttpProblem(400, "invalid query",
                          "the query string must be percent-encoded UTF-8, with at most "
                          f"{_MAX_FIELDS} parameters (prefix, cursor, limit)",
                          code="kv.query.invalid") from None
    first: dict[str, str] = {}
    for name, value in pairs:
        first.setdefault(name, value)
    return first


async def _body() -> bytes:
    """The PUT body, read up to :data:`MAX_KV_BODY` bytes (413 beyond)."""
    length = request.content_length
    if length is not None and length > MAX_KV_BODY:
        raise _too_large()
    received = bytearray()
    async for chunk in request.body:
        received += chunk
        if len(received) > MAX_KV_BODY:
            raise _too_large()
    g.body_read = True  # the connection may be kept alive (see _app's after_request)
    return bytes(received)


def _too_large() -> HttpProblem:
    return HttpProblem(413, "request body too large",
                       f"a KV request body is limited to {MAX_KV_BODY} bytes (a value is at "
                       "most 8 KiB, sent as base64)", code="body.too.large")


def _value_field(raw: bytes) -> Any:
    """The ``value`` member of the JSON body (checked as base64 by the caller)."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, too deep
        detail = "the body is empty" if not raw.strip() else f"the body is not JSON: {exc}"
        raise _invalid_body(detail) from None
    if not isinstance(data, dict):
        raise _invalid_body("the body must be a JSON object")
    unknown = sorted(set(data) - {"value"})
    if unknown:
        shown = ", ".join(repr(name if len(name) <= 40 else name[:40] + "…")
                          for name in unknown[:3])
        raise _invalid_body(f"unknown member{'s' if len(unknown) > 1 else ''} {shown}")
    if "value" not in data:
        raise _invalid_body("the member value is missing")
    return data["value"]


def _invalid_body(detail: str) -> HttpProblem:
    return HttpProblem(400, "invalid JSON body",
                       f'{detail}: send {{"value": "<base64>"}}, e.g. {{"value": "aGVsbG8="}}',
                       code="kv.body.invalid")
