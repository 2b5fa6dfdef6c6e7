"""A job written just before a request is found, though the catalog is checked at most once
a second for bursts: a miss looks again, from a check begun after the request arrived."""

from __future__ import annotations

from pathlib import Path

import pytest

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
