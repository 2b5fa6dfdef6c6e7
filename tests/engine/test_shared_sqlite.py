"""Two engines sharing one SQLite Core DB as the replicas of a cluster (what the workers of
``flwd :serve --workers`` are), in one process: a run accepted by one executes there when it
can, is streamed by the other from the journal — woken by the Core DB's bus, not polling —
and a replica whose queue is empty does not claim after each of its runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from flwd.engine import open_engine
from flwd.engine._cluster import ClusterSettings
from flwd.engine._lease import ClusterTiming
from flwd.settings import Settings
from flwd.store import cluster as cluster_sql
from tests.engine.test_engine import expand, make_plan

#: Polls of the queue every 2.5 s (heartbeat / 2): a few at most while the test runs.
TIMING = ClusterTiming(heartbeat=5.0, lease=15.0)


def _settings(workspace: Path, home: Path, index: int) -> Settings:
    return Settings(workspace=workspace, scripts_root=workspace / "scripts",
                    data_dir=home / "workers" / str(index), db=str(home / "flwd.db"),
                    shared_db=True, grace=1.0)


async def test_a_run_executes_where_accepted_and_streams_from_the_other(
        workspace: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    claims = []
    real_claim = cluster_sql.claim

    def counting_claim(conn, **kwargs):  # type: ignore[no-untyped-def]
        claims.append(kwargs["replica_id"])
        return real_claim(conn, **kwargs)

    monkeypatch.setattr(cluster_sql, "claim", counting_claim)
    first, second = _settings(workspace, data_dir, 0), _settings(workspace, data_dir, 1)
    async with open_engine(first, owner_kind="serve", cluster=ClusterSettings(
            timing=TIMING, replica_id="w0", local_first=True)) as a, \
            open_engine(second, owner_kind="serve", cluster=ClusterSettings(
                timing=TIMING, replica_id="w1", local_first=True)) as b:
        assert a.root.store.clustered and a.root.cluster is not None
        assert b.root.wakes is not None
        started = len(claims)
        for index in range(12):
            run = await a.start_run(make_plan(first, "demo", name=f"n{index}"))
            events = expand([batch async for batch in b.events(run.id)])
            assert events[-1]["type"] == "run.finish"
            assert events[-1]["data"]["status"] == "completed"
        assert len(claims) - started < 8, f"{len(claims) - started} claims for 12 runs"
        runs, total = await b.list_runs()
        assert total == 12 and {r.owner_pid for r in runs} == {runs[0].owner_pid}
