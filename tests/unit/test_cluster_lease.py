"""Sans-IO parts of a cluster replica: lease arithmetic, the plan digest, the claim's SQL,
``--labels`` / FLWD_CLUSTER_* parsing and a job's ``runs_on``."""

from __future__ import annotations

import pytest

from flwd.engine import cluster_settings
from flwd.engine._lease import ClusterTiming, LeaseWatch, plan_digest, plan_places
from flwd.errors import UsageError
from flwd.jobs._config import JobConfig
from flwd.store import cluster
from flwd.store.postgres import translate


def test_a_replica_that_cannot_renew_stops_its_runs_before_the_lease_can_lapse() -> None:
    timing = ClusterTiming(heartbeat=5.0, lease=30.0, grace=10.0)
    watch = LeaseWatch(timing, started=100.0)
    assert watch.lapses_at() == 130.0
    # Room for the stop (the grace, and a heartbeat for the kill to be seen).
    assert watch.stop_at() == 115.0 and not watch.must_stop(114.9) and watch.must_stop(115.0)
    watch.renewed(112.0)  # a renewal *sent* at 112 moves both on from 112, not from its answer
    assert watch.lapses_at() == 142.0 and watch.stop_at() == 127.0
    watch.renewed(110.0)  # a late answer of an older attempt never moves them back
    assert watch.lapses_at() == 142.0


def test_a_long_grace_never_stops_runs_before_a_heartbeat_was_missed() -> None:
    timing = ClusterTiming(heartbeat=1.0, lease=3.0, grace=30.0)
    assert timing.stop_margin == 2.0  # two thirds of the lease at most
    assert LeaseWatch(timing, 0.0).stop_at() == 1.0


@pytest.mark.parametrize(("heartbeat", "lease"), [(0.0, 30.0), (5.0, 10.0), (float("nan"), 30)])
def test_timings_that_cannot_work_are_refused(heartbeat: float, lease: float) -> None:
    with pytest.raises(ValueError):
        ClusterTiming(heartbeat=heartbeat, lease=lease)


def test_the_plan_digest_ignores_where_the_folders_are_and_nothing_else() -> None:
    def plan(root: str, command: str = "bash x.sh") -> dict[str, object]:
        return {"job_id": "tools/a", "steps": [{"id": "s", "script": f"{root}/c/scripts/x.sh",
                                                "command": command}],
                "provenance": {"source": {"name": "tools", "resolved_ref": f"{root}/c",
                                          "metadata": {"commit": "abc",
                                                       "refreshed_at": root[-9:]}}}}

    def places(root: str) -> dict[str, str]:
        return plan_places("/srv/ws", f"{root}/c/scripts/a", (f"{root}/c", f"{root}/c/scripts"))

    here = plan_digest(plan("/var/a/sources/tools"), places("/var/a/sources/tools"))
    there = plan_digest(plan("/home/b/.flwd/sources/tools"),
                        places("/home/b/.flwd/sources/tools"))
    assert here == there
    changed = plan_digest(plan("/var/a/sources/tools", "bash y.sh"),
                          places("/var/a/sources/tools"))
    assert changed != here
    assert plan_digest({"security_profile": "secure"}) != plan_digest(
        {"security_profile": "permissive"})


def test_the_claim_locks_skip_locked_in_a_materialized_cte_on_the_claimable_rows() -> None:
    sql = " ".join(cluster.claim_sql("now()").split())
    assert "WITH candidates AS MATERIALIZED (" in sql
    assert "FOR UPDATE SKIP LOCKED" in sql
    # The partial index runs_claimable's predicate, so the planner can use it.
    assert "status = 'queued' AND queue IS NOT NULL AND replica_id IS NULL" in sql
    assert "busy + rank <= concurrency" in sql and "LIMIT :free" in sql
    # psycopg's parameters; the casts are left alone.
    translated = translate(cluster.claim_sql("now()"))
    assert "%(labels)s::jsonb" in translated and "%(free)s" in translated
    reap = " ".join(cluster.reap_sql("now()").split())
    assert "AS MATERIALIZED" in reap and "lease_until < now()" in reap
    assert "lease_epoch = runs.lease_epoch + 1" in reap


def test_labels_and_timings_come_from_the_flag_or_the_environment() -> None:
    settings = cluster_settings(["gpu,Linux", "linux"], {})
    assert settings.labels == ("gpu", "linux")
    assert cluster_settings(None, {"FLWD_LABELS": "arm64"}).labels == ("arm64",)
    timed = cluster_settings(None, {"FLWD_CLUSTER_HEARTBEAT": "0.5",
                                    "FLWD_CLUSTER_LEASE": "4"})
    assert (timed.timing.heartbeat, timed.timing.lease) == (0.5, 4.0)
    with pytest.raises(UsageError, match="--labels"):
        cluster_settings(["gpu box"], {})
    with pytest.raises(UsageError, match="FLWD_CLUSTER_LEASE"):
        cluster_settings(None, {"FLWD_CLUSTER_LEASE": "soon"})
    with pytest.raises(UsageError, match="three heartbeats"):
        cluster_settings(None, {"FLWD_CLUSTER_HEARTBEAT": "5", "FLWD_CLUSTER_LEASE": "6"})


def test_runs_on_is_validated_like_other_config_fields() -> None:
    assert JobConfig.model_validate({"runs_on": ["Linux", "gpu", "linux"]}).runs_on == [
        "linux", "gpu"]
    assert JobConfig.model_validate({"runs_on": "linux"}).runs_on == ["linux"]
    assert JobConfig.model_validate({}).runs_on == []
    with pytest.raises(ValueError, match="not a valid label"):
        JobConfig.model_validate({"runs_on": ["a b"]})
