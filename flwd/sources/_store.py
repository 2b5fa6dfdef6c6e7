"""Sources in the Core DB (blocking; call from a thread inside trio)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from flwd import store

from ._model import Source, SourceSpec, SourceState
from ._oci import digest_to_record

#: Rewritten whenever a source is saved or deleted, so that caches built from the
#: sources (shell completion's job index) notice with one ``stat``.
MARKER = "sources/.changed"


def marker_path(data_dir: Path) -> Path:
    return data_dir / MARKER


def _touch_marker(db_path: Path) -> None:
    marker = marker_path(db_path.parent)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        counter = marker.read_text() if marker.exists() else "0"
        marker.write_text(str(int(counter or "0") + 1) if counter.isdigit() else "1")
    except OSError:
        pass  # only a cache hint


def load_sources(db_path: Path) -> list[Source]:
    """Every registered source, by name (an absent DB has none)."""
    if not db_path.exists():
        return []
    conn = store.connect(db_path)
    try:
        rows = conn.execute("SELECT spec, state, created_at, updated_at FROM sources "
                            "ORDER BY name").fetchall()
    finally:
        conn.close()
    return [Source(SourceSpec.from_json(json.loads(spec)), SourceState.from_json(json.loads(state)),
                   created_at, updated_at) for spec, state, created_at, updated_at in rows]


def save_source(db_path: Path, source: Source) -> None:
    conn = store.connect(db_path)
    try:
        conn.execute(
            "INSERT INTO sources(name, type, spec, state, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET type = excluded.type, "
            "spec = excluded.spec, state = excluded.state, updated_at = excluded.updated_at",
            (source.name, source.spec.type, json.dumps(source.spec.to_json()),
             json.dumps(source.state.to_json()), source.created_at, source.updated_at))
    finally:
        conn.close()
    _touch_marker(db_path)


def delete_source(db_path: Path, name: str) -> bool:
    conn = store.connect(db_path)
    try:
        deleted = conn.execute("DELETE FROM sources WHERE name = ?", (name,)).rowcount > 0
    finally:
        conn.close()
    _touch_marker(db_path)
    return deleted


def record_digest(db_path: Path, name: str, image: str, digest: str) -> bool:
    """Pin ``digest`` on the ``on-run`` add-on ``name`` after a run of ``image`` succeeded.

    For processes without a source registry (a CLI run); True when recorded.
    """
    for source in load_sources(db_path):
        if source.name.casefold() != name.casefold():
            continue
        pinned = digest_to_record(source.spec, source.state, digest, image)
        if pinned is None:
            return False
        state = SourceState.from_json({**source.state.to_json(), "digest": pinned})
        save_source(db_path, source.with_state(state, time.time()))
        return True
    return False
