"""A job written just before a request is found, though the catalog is checked at most once
a second for bursts: a miss looks again, from a check begun after the request arrived."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from flwd.engine import open_engine
from flwd.errors import JobNotFound
from tests.conftest import write_job
from tests.engine.test_engine import settings_for


async def test_a_job_written_after_the_last_check_is_found(workspace: Path, data_dir: Path
                                                          ) -> None:
    settings = settings_for(workspace, data_dir)
    async with open_engine(settings) as engine:
        before = await engine.catalog()
        assert "fresh" not in [job.id for job in before.jobs]
        write_job(workspace, "fresh", "interpreter: bash\n", {"100_x.sh": "echo hi\n"})
        job, _ = await engine.find_job("fresh")
        assert job.id == "fresh"
        with pytest.raises(JobNotFound):
            await engine.find_job("never-written")


def _age(root: Path) -> None:
    """Date every file and folder under ``root`` an hour back (a workspace not being
    edited: nothing is trusted to a stamp of the last two seconds)."""
    import os
    import time

    past = time.time() - 3600
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.utime(Path(folder) / name, (past, past))
    os.utime(root, (past, past))


async def test_a_cached_job_is_trusted_only_while_its_own_files_are_unchanged(
        workspace: Path, data_dir: Path) -> None:
    # The thin client's run checks its job with a few stats, not a walk of the tree
    # (160 ms at 1,001 jobs); what could make the words mean another job is looked at.
    import os

    settings = settings_for(workspace, data_dir)
    write_job(workspace, "tools/deploy", "interpreter: bash\n", {"100_x.sh": "echo hi\n"})
    (workspace / "scripts" / "misc").mkdir()
    _age(workspace)
    async with open_engine(settings) as engine:
        catalog = await engine.catalog(fresh_since=trio.current_time())
        job = next(job for job in catalog.jobs if job.id == "tools.deploy")
        assert engine.job_unchanged(job)
        assert await engine.catalog(cached=True) is catalog
        # A job elsewhere (not in a folder above it): not this job's business.
        write_job(workspace, "misc/other", "interpreter: bash\n", {"100_x.sh": "echo\n"})
        _age(workspace / "scripts" / "misc")
        assert engine.job_unchanged(job)
        # A folder at the root changes the root's listing: looked at again.
        (workspace / "scripts" / "new").mkdir()
        assert not engine.job_unchanged(job)
        _age(workspace)
        catalog = await engine.catalog(fresh_since=trio.current_time())
        job = next(job for job in catalog.jobs if job.id == "tools.deploy")
        assert engine.job_unchanged(job)
        # Its config edited just now (racy), then aged but changed in size.
        config = job.config_path
        config.write_text(config.read_text() + "# edited\n")
        assert not engine.job_unchanged(job)
        _age(workspace)
        assert not engine.job_unchanged(job)
        catalog = await engine.catalog(fresh_since=trio.current_time())
        job = next(job for job in catalog.jobs if job.id == "tools.deploy")
        assert engine.job_unchanged(job)
        # A folder added beside it (a job that could take its words), and aliases.
        (job.dir / "canary").mkdir()
        _age(workspace)
        assert not engine.job_unchanged(job)
        catalog = await engine.catalog(fresh_since=trio.current_time())
        job = next(job for job in catalog.jobs if job.id == "tools.deploy")
        assert engine.job_unchanged(job)
        (workspace / "scripts" / "flwd.yaml").write_text("aliases: {}\n")
        _age(workspace)
        assert not engine.job_unchanged(job)
        # A folder gone from under it.
        catalog = await engine.catalog(fresh_since=trio.current_time())
        job = next(job for job in catalog.jobs if job.id == "tools.deploy")
        assert engine.job_unchanged(job)
        os.rename(job.dir, job.dir.with_name("moved"))
        assert not engine.job_unchanged(job)
