"""Sources kept in the Core DB, through the :class:`~flwd.store.Store` port.

Blocking (the store's threading contract): call from a thread inside trio.
The store keeps a source as JSON; this turns it into a :class:`Source` and back.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from flwd.store import SourceRecord, Store, sources_marker

from ._model import Source, SourceSpec, SourceState
from ._oci import digest_to_record


def load_sources(store: Store) -> list[Source]:
    """Every registered source, by name (a store without a database has none)."""
    return [Source(SourceSpec.from_json(record.spec), SourceState.from_json(record.state),
                   record.created_at, record.updated_at) for record in store.load_sources()]


def save_source(store: Store, source: Source) -> None:
    store.save_source(SourceRecord(source.name, source.spec.type, source.spec.to_json(),
                                   source.state.to_json(), source.created_at, source.updated_at))


def update_source(store: Store, source: Source) -> bool:
    """Save ``source`` only if it is still registered (see ``Store.update_source``)."""
    return store.update_source(SourceRecord(source.name, source.spec.type,
                                            source.spec.to_json(), source.state.to_json(),
                                            source.created_at, source.updated_at))


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


#: In ``<data dir>/sources``: the sources a server on a shared Core DB serves, with this
#: host's checkouts (the registry's rows name the checkouts of whichever server saved
#: them last). Completion on this host reads it (``flwd.complete``).
REPLICA_FILE = "replica.json"


def write_replica_sources(sources_dir: Path, sources: Sequence[Source]) -> None:
    """Replace ``sources_dir/replica.json`` with ``sources`` (atomically), and touch the
    sources marker so that completion's cached index is rebuilt."""
    sources_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = json.dumps([{"spec": source.spec.to_json(), "state": source.state.to_json(),
                        "created_at": source.created_at, "updated_at": source.updated_at}
                       for source in sources])
    fd, temporary = tempfile.mkstemp(prefix=f".{REPLICA_FILE}.", dir=sources_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, sources_dir / REPLICA_FILE)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    marker = sources_marker(sources_dir.parent)
    counter = marker.read_text() if marker.exists() else "0"
    marker.write_text(str(int(counter) + 1) if counter.isdigit() else "1")


def read_replica_sources(sources_dir: Path) -> list[Source]:
    """What :func:`write_replica_sources` wrote last (none when there is no such file)."""
    try:
        items = json.loads((sources_dir / REPLICA_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    return [Source(SourceSpec.from_json(item["spec"]), SourceState.from_json(item["state"]),
                   item["created_at"], item["updated_at"]) for item in items]
