"""A run's job is looked up without regard to case (job ids are case-insensitive), and
an index serves that lookup on both backends (schema 11): a history filtered by job, on
a Core DB of many runs, reads that job's runs, not every run."""

from __future__ import annotations

import sqlite3
from typing import Any

from flwd.store import SqliteStore, run_filter
from flwd.store._dialect import SQLITE
from flwd.store._filter import where_clause

from .conftest import Backend


def _plan(backend: Backend, store: Any) -> str:
    query = run_filter(job_id="Backup.Nightly")
    if isinstance(store, SqliteStore):
        clause, params = where_clause(query, dialect=SQLITE)
        with sqlite3.connect(store.path) as conn:
            rows = conn.execute(f"EXPLAIN QUERY PLAN SELECT id FROM runs {clause} "
                                "ORDER BY created_at DESC, id DESC", params).fetchall()
        conn.close()
        return "\n".join(str(row[-1]) for row in rows)
    import psycopg

    from flwd.store.postgres import POSTGRES

    clause, params = where_clause(query, dialect=POSTGRES)
    with psycopg.connect(store.dsn) as conn:
        # A table this small is read whole by choice: ask whether the index can serve.
        conn.execute("SET enable_seqscan = off")
        rows = conn.execute(f"EXPLAIN SELECT id FROM runs {clause.replace(':job_id', '%(job_id)s')} "
                            "ORDER BY created_at DESC, id DESC", params).fetchall()
    return "\n".join(str(row[0]) for row in rows)


def test_a_job_filter_is_served_by_an_index(backend: Backend) -> None:
    store = backend.fresh()
    store.migrate()
    plan = _plan(backend, store)
    assert "runs_by_job_nocase" in plan or "runs_by_job_folded" in plan, plan
