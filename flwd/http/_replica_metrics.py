"""The metrics of a server that is a replica of a cluster (a PostgreSQL Core DB shared
by several servers): which replica it is, and the runs it holds. One series each per
process (bounded labels: its id and labels never change while it runs)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge, Info

if TYPE_CHECKING:
    from flwd.engine import Engine


def watch_replica(registry: CollectorRegistry, engine: Engine) -> None:
    """Add ``flwd_replica_info{replica, labels}``, ``flwd_replica_runs{state}`` and
    ``flwd_scheduler_leader`` to ``registry`` when ``engine`` is a cluster replica (nothing
    outside a cluster)."""
    if engine.replica is None:
        return
    replica_id, labels = engine.replica
    info = Info("flwd_replica", "This server as a replica of a cluster (id, labels)",
                registry=registry)
    info.info({"replica": replica_id, "labels": ",".join(labels)})
    runs = Gauge("flwd_replica_runs", "Runs this server holds, executing or waiting for a "
                 "local slot", ["state"], registry=registry)
    runs.labels("running").set_function(lambda: engine.cluster_load()[0])
    runs.labels("waiting").set_function(lambda: engine.cluster_load()[1])
    leader = Gauge("flwd_scheduler_leader", "1 while this replica's scheduler holds its "
                   "workspace's leader lease (it fires the schedules), else 0",
                   registry=registry)
    leader.set_function(lambda: 1.0 if engine.scheduler_leading else 0.0)
