"""Sources kept in the Core DB, through the :class:`~flwd.store.Store` port.

Blocking (the store's threading contract): call from a thread inside trio.
The store keeps a source as JSON; this turns it into a :class:`Source` and back.
"""

from __future__ import annotations

import time

from flwd.store import SourceRecord, Store

from ._model import Source, SourceSpec, SourceState
from ._oci import digest_to_record


def load_sources(store: Store) -> list[Source]:
    """Every registered source, by name (a store without a database has none)."""
    return [Source(SourceSpec.from_json(record.spec), SourceState.from_json(record.state),
                   record.created_at, record.updated_at) for record in store.load_sources()]


def save_source(store: Store, source: Source) -> None:
    store.save_source(SourceRecord(source.name, source.spec.type, source.spec.to_json(),
                                   source.state.to_json(), source.created_at, source.updated_at))


def delete_source(store: Store, name: str) -> bool:
    return store.delete_source(name)


def record_digest(store: Store, name: str, image: str, digest: str) -> bool:
    """Pin ``digest`` on the ``on-run`` add-on ``name`` after a run of ``image`` succeeded.

    For processes without a source registry (a CLI run); True when recorded.
    """
    for source in load_sources(store):
        if source.name.casefold() != name.casefold():
            continue
        pinned = digest_to_record(source.spec, source.state, digest, image)
        if pinned is None:
            return False
        state = SourceState.from_json({**source.state.to_json(), "digest": pinned})
        save_source(store, source.with_state(state, time.time()))
        return True
    return False
