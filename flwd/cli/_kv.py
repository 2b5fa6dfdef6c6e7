"""``flwd :kv get|put|delete|list``: the Rule-Y KV of the data dir, or of a server.

Written once against the backend. Locally (what a job does: every host step gets
``FLWD_DATA_DIR`` and ``FLWD_KV_NAMESPACES``), the verb opens the data dir's Core
DB through the Store, with no token: whoever may read and write the data dir
(its owner, mode 0700) may use its KV, as they could open the file anyway. With
``--server`` the same verbs go through ``/kv`` with ``FLWD_TOKEN``
(``ruley:read`` / ``ruley:write``), with the same output and exit statuses.

Values are bytes: ``get`` writes them to stdout as they are, ``put`` takes them
from its VALUE operand (as UTF-8) or, without one, from stdin (any bytes; what
a secret should use, since an operand shows in process listings).
"""

from __future__ import annotations

import base64
import json as jsonlib
import sys
from typing import Annotated, Any

from cyclopts import App, Parameter

from flwd.errors import KvValueTooLong, UsageError

from ._mode import open_backend
from ._render import dumps

kv_app = App(name=":kv", backend="trio",
             help="Read and write the Rule-Y KV: small values (at most 8 KiB each) that jobs "
                  "and triggers keep between runs, in allow-listed namespaces "
                  "(core_triggers, core_invocation_state by default).")

Word = Annotated[str, Parameter(allow_leading_hyphen=True)]


@kv_app.command(name="get")
async def get_command(namespace: str, key: Word, /, *, json: bool = False) -> int:
    """Print the value stored under KEY, as it is (bytes; no newline is added).

    Exit status 1 when there is no such key.

    Parameters
    ----------
    namespace
        An allow-listed namespace, e.g. core_triggers.
    key
        The key (1-256 bytes of UTF-8 text; '/' allowed).
    json
        Print {key, value (base64), timestamp} instead.
    """
    async with open_backend() as backend:
        document = await backend.kv_get(namespace, key)
    if json:
        print(dumps(document))
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(base64.b64decode(str(document["value"])))
        sys.stdout.buffer.flush()
    return 0


@kv_app.command(name="put")
async def put_command(namespace: str, key: Word, value: Word | None = None, /) -> int:
    """Store VALUE under KEY (replacing any value), within the namespace's quota.

    Without VALUE, the value is read from stdin, byte for byte: use that for a secret
    (an operand is visible to other users in process listings) or for binary data.

    Parameters
    ----------
    namespace
        An allow-listed namespace, e.g. core_triggers.
    key
        The key (1-256 bytes of UTF-8 text; '/' allowed).
    value
        The value as text (at most 8 KiB of UTF-8); default: read stdin.
    """
    data = _operand_bytes(value) if value is not None else _read_stdin()
    async with open_backend() as backend:
        await backend.kv_put(namespace, key, data)
    return 0


@kv_app.command(name="delete")
async def delete_command(namespace: str, key: Word, /) -> int:
    """Remove KEY. Exit status 1 when there is no such key.

    Parameters
    ----------
    namespace
        An allow-listed namespace.
    key
        The key.
    """
    async with open_backend() as backend:
        await backend.kv_delete(namespace, key)
    return 0


@kv_app.command(name="list")
async def list_command(namespace: str, /, *, prefix: str = "", limit: int | None = None,
                       json: bool = False) -> int:
    """List the keys of a namespace in byte order, one per line (every page).

    A key with a line break or another control character is printed as a JSON
    string; --json gives every key exactly.

    Parameters
    ----------
    namespace
        An allow-listed namespace.
    prefix
        Only keys that start with this text.
    limit
        At most this many keys (default: all).
    json
        Print a JSON array of {key, value (base64), timestamp}.
    """
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1 (got {limit})")
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    async with open_backend() as backend:
        while limit is None or len(items) < limit:
            page = await backend.kv_list(namespace, prefix=prefix, cursor=cursor,
                                         limit=256 if limit is None else limit - len(items))
            items += page.get("items") or []
            cursor = page.get("nextCursor")
            if not cursor:
                break
    if json:
        print(dumps(items))
    else:
        for item in items:
            shown = str(item["key"])
            print(shown if shown.isprintable() else jsonlib.dumps(shown, ensure_ascii=False))
    return 0


def _operand_bytes(value: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("VALUE is not UTF-8 text",
                         hint="pipe bytes on stdin instead: 'flwd :kv put NS KEY < FILE'") from None


def _read_stdin() -> bytes:
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("put needs a VALUE, or the value piped on stdin",
                         hint="e.g. 'flwd :kv put core_triggers last-run 42' or "
                              "'... put core_triggers blob < file'")
    # Imported here to keep start-up fast: the Core DB's modules only where used.
    from flwd.store import MAX_VALUE_BYTES

    data = sys.stdin.buffer.read(MAX_VALUE_BYTES + 1)  # bounded: never more than one past
    if len(data) > MAX_VALUE_BYTES:
        raise KvValueTooLong(f"stdin holds more than {MAX_VALUE_BYTES} bytes "
                             f"({MAX_VALUE_BYTES // 1024} KiB), the most a value may have")
    return data
