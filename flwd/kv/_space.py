"""``KvSpace``: a KV request against the Core DB, in an allow-listed namespace (blocking).

The engine façade calls it from a worker thread; the CLI's local ``:kv`` verb
calls it directly. Either way the same checks, in the reference's order: the
namespace (403), then the key (400), then the value and the quota (400, 429).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flwd.errors import KvKeyNotFound
from flwd.store import KvItem, Store, check_key

from ._namespaces import KvNamespaces
from ._wire import MAX_LIMIT, encode, item_document, key_text


@dataclass(frozen=True, slots=True)
class KvPage:
    """One page of a list: the entries, and the cursor of the next page (None: the last)."""

    items: list[KvItem]
    next_cursor: bytes | None

    def document(self) -> dict[str, Any]:
        """``{"items": [...], "nextCursor"?}`` as ``GET /kv/NS`` answers it."""
        document: dict[str, Any] = {"items": [item_document(item) for item in self.items]}
        if self.next_cursor is not None:
            document["nextCursor"] = encode(self.next_cursor)
        return document


class KvSpace:
    """The KV of one Core DB, as the allow-list ``namespaces`` lets it be used."""

    def __init__(self, store: Store, namespaces: KvNamespaces) -> None:
        self.store = store
        self.namespaces = namespaces

    def namespace(self, name: str) -> str:
        """The namespace as stored. Raises KvNamespaceForbidden."""
        return self.namespaces.resolve(name)[0]

    def check(self, namespace: str, key: str | None = None) -> None:
        """Raises KvNamespaceForbidden, then (given a key) KvKeyRequired / KvKeyTooLong /
        KvKeyNotText: what a request is refused for before its body is read."""
        if key is None:
            self.namespace(namespace)
        else:
            self._key(namespace, key)

    def get(self, namespace: str, key: str) -> KvItem:
        """Raises KvNamespaceForbidden, KvKeyRequired / KvKeyTooLong / KvKeyNotText,
        KvKeyNotFound."""
        stored, data = self._key(namespace, key)
        item = self.store.kv_get(stored, data)
        if item is None:
            raise _not_found(stored, key)
        return item

    def put(self, namespace: str, key: str, value: bytes) -> None:
        """Raises as :meth:`get` (but KvKeyNotFound), KvValueTooLong, KvQuotaExceeded,
        StorageError."""
        stored, limit = self.namespaces.resolve(namespace)
        self.store.kv_put(stored, key_text(key), value, quota=limit)

    def delete(self, namespace: str, key: str) -> None:
        """Raises as :meth:`get`, StorageError."""
        stored, data = self._key(namespace, key)
        if not self.store.kv_delete(stored, data):
            raise _not_found(stored, key)

    def scan(self, namespace: str, *, prefix: str = "", cursor: bytes | None = None,
             limit: int = MAX_LIMIT) -> KvPage:
        """The entries whose key starts with ``prefix``, after ``cursor``, ``limit`` at most.

        Raises KvNamespaceForbidden, KvKeyNotText (the prefix).
        """
        stored = self.namespace(namespace)
        items, more = self.store.kv_scan(stored, prefix=key_text(prefix, "prefix"),
                                         after=cursor, limit=min(max(limit, 1), MAX_LIMIT))
        return KvPage(items, items[-1].key if more and items else None)

    def _key(self, namespace: str, key: str) -> tuple[str, bytes]:
        stored = self.namespace(namespace)
        data = key_text(key)
        check_key(data)  # an empty or too long key is refused as a put's is
        return stored, data


def _not_found(namespace: str, key: str) -> KvKeyNotFound:
    shown = key if len(key) <= 80 else key[:80] + "…"
    return KvKeyNotFound(f"no key {shown!r} in namespace {namespace}")
