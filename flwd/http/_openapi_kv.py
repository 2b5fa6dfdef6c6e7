"""The OpenAPI paths of the Rule-Y KV (``_kv``): its parameters, bodies and problems."""

from __future__ import annotations

from typing import Any

from ._openapi_parts import json_response, operation, problem, problems, ref

_KV_NAMESPACE = {
    "name": "namespace", "in": "path", "required": True,
    "description": "An allow-listed namespace, in any case (default: core_triggers, "
                   "core_invocation_state); another is 403 namespace-forbidden",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_]{1,64}$"},
    "examples": {"triggers": {"value": "core_triggers"},
                 "invocations": {"value": "core_invocation_state"}}}
_KV_KEY = {
    "name": "key", "in": "path", "required": True,
    "description": "The key: the rest of the path, '/' included, percent-decoded; "
                   "1-256 bytes of UTF-8 (longer is 400 key exceeds maximum length)",
    "schema": {"type": "string", "minLength": 1, "maxLength": 256}}
_KV_QUERY = [
    {"name": "prefix", "in": "query", "description": "Only keys that start with this text",
     "schema": {"type": "string"}},
    {"name": "cursor", "in": "query",
     "description": "The nextCursor of the previous page (the base64 of a key)",
     # Standard base64 of at most 256 bytes (a key): 85 groups of four (255 bytes)
     # and one byte more, or 84 groups and two bytes more.
     "schema": {"type": "string",
                "pattern": "^(?:(?:[A-Za-z0-9+/]{4}){0,85}(?:[A-Za-z0-9+/]{2}==)?"
                           "|(?:[A-Za-z0-9+/]{4}){0,84}[A-Za-z0-9+/]{3}=)$"}},
    {"name": "limit", "in": "query",
     "description": "At most this many entries (more than 256 answers 256)",
     "schema": {"type": "integer", "minimum": 1, "default": 256}},
]
_KV_STORAGE = problem("E_STORAGE: the Core DB cannot be written (a full disk)")


def kv_paths() -> dict[str, Any]:
    key = [_KV_NAMESPACE, _KV_KEY]
    return {
        "/kv/{namespace}": {"get": operation(
            "Rule-Y KV: a page of the namespace's entries, in byte order of their keys",
            ("ruley:read",), {"200": json_response(ref("KvPage")), **problems(400, 401, 403)},
            parameters=[_KV_NAMESPACE, *_KV_QUERY])},
        "/kv/{namespace}/{key}": {
            "get": operation(
                "Rule-Y KV: the entry under a key", ("ruley:read",),
                {"200": json_response(ref("KvEntry")), **problems(400, 401, 403, 404)},
                parameters=key),
            "put": operation(
                "Rule-Y KV: store a value under a key (replacing any)", ("ruley:write",),
                {"204": {"description": "Stored"}, **problems(400, 401, 403, 413, 429),
                 "503": _KV_STORAGE},
                parameters=key, requestBody={"required": True, "content": {
                    "application/json": {"schema": ref("KvPutRequest")}}}),
            "delete": operation(
                "Rule-Y KV: remove a key", ("ruley:write",),
                {"204": {"description": "Removed"}, **problems(400, 401, 403, 404),
                 "503": _KV_STORAGE},
                parameters=key),
        },
    }
