"""``flwd :db migrate|status``: the Core DB's schema, on SQLite or PostgreSQL.

Which Core DB: ``--db URL`` / ``FLWD_DB`` (a ``postgresql://`` URL or a SQLite file),
else the data dir's ``flwd.db``. A writer migrates as it opens (``flwd :serve``, a
run), so ``migrate`` is for doing it ahead — before several replicas start, or with
a role that may change the schema when the servers' may not.
"""

from __future__ import annotations

from typing import Any

from cyclopts import App

from flwd.store import SCHEMA_VERSION, Store

from ._context import CONTEXT
from ._render import dumps

db_app = App(name=":db", help="The Core DB's schema: create or upgrade it (migrate), or say "
                              "where the Core DB is and what it holds (status).")


def _store() -> Store:
    return CONTEXT.settings(require_scripts=False).open_store()


def _usage(store: Store) -> dict[str, Any] | None:
    """What the store reports of itself; None while it has no database (or schema)."""
    return store.storage_usage() if store.exists() else None


@db_app.command(name="migrate")
def migrate_command(*, json: bool = False) -> int:
    """Create the Core DB's schema, or bring an older one up to this flwd's version.

    Idempotent: a Core DB already at this version is left as it is. One transaction
    on PostgreSQL, so several replicas may start (and migrate) at once.

    Parameters
    ----------
    json
        Print the outcome as JSON.
    """
    store = _store()
    before = _usage(store)
    store.migrate()
    after = store.storage_usage()
    was = None if before is None else before["schema_version"]
    if json:
        print(dumps({"db": store.location, "driver": after["driver"], "from_version": was,
                     "schema_version": after["schema_version"]}))
    elif was == after["schema_version"]:
        print(f"the Core DB {store.location} is up to date (schema version {was})")
    elif was is None:
        print(f"created the Core DB {store.location} (schema version "
              f"{after['schema_version']})")
    else:
        print(f"migrated the Core DB {store.location} from schema version {was} to "
              f"{after['schema_version']}")
    return 0


@db_app.command(name="status")
def status_command(*, json: bool = False) -> int:
    """Say which Core DB this command line uses, its schema version and what it holds.

    Reads only: a Core DB that does not exist yet is reported as such, not created.

    Parameters
    ----------
    json
        Print the status as JSON.
    """
    store = _store()
    usage = _usage(store)
    report = {"db": store.location, "exists": usage is not None,
              "driver": None if usage is None else usage["driver"],
              "schema_version": None if usage is None else usage["schema_version"],
              "flwd_schema_version": SCHEMA_VERSION,
              "runs": 0 if usage is None else usage["runs"],
              "events": 0 if usage is None else usage["events"]}
    if json:
        print(dumps(report))
        return 0
    print(f"Core DB: {store.location}")
    if usage is None:
        print("no database yet: the first run, 'flwd :serve' or 'flwd :db migrate' creates it")
        return 0
    print(f"driver: {usage['driver']}, schema version {usage['schema_version']} "
          f"(this flwd: {SCHEMA_VERSION}); {usage['runs']} runs, {usage['events']} events")
    return 0
