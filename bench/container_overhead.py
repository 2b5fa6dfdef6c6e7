"""Container overhead: a trivial container job through flwd vs `podman run` of the same image.

Three timings, interleaved, median of N runs each, in the same run:

- ``podman run`` directly, with the same hardened flags flwd uses;
- through flwd's engine (the path of ``POST /runs``: plan, journal, container
  actor, events) in one long-lived process, as a server runs it;
- the whole CLI process ``flwd JOB`` (adds Python start-up and imports).

Needs podman and the offline test image (``localhost/flwd-test/busybox:1``,
see docs/containers.md); ``CONTAINERS_CONF`` as for the tests on this VM.

    python bench/container_overhead.py [--runs N] [--image REF]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import header, median, percentile, record, time_command, write_job

TARGET_MS = 150.0
CONF = """[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


async def _engine_runs(workspace: Path, data_dir: Path, runs: int) -> list[float]:
    from flwd.cli._run import plan_with_policy
    from flwd.engine import open_engine
    from flwd.events import RUN_FINISH
    from flwd.jobs import bind_cli, discover
    from flwd.settings import Settings

    settings = Settings(workspace=workspace, scripts_root=workspace / "scripts",
                        data_dir=data_dir)
    job = discover(settings.scripts_root).get("trivial")
    timings = []
    async with open_engine(settings) as engine:
        for _ in range(runs + 2):
            start = trio.current_time()
            plan = plan_with_policy(job, bind_cli(job.config.args, {}, job_id=job.id),
                                    settings, profile="secure", alias=None,
                                    journal_refusals=True)
            run = await engine.start_run(plan)
            async for records in engine.events(run.id):
                if records[-1].type == RUN_FINISH:
                    assert records[-1].data["status"] == "completed", records[-1].data
                    break
            timings.append(trio.current_time() - start)
    return timings[2:]  # the first runs warm caches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--image", default="localhost/flwd-test/busybox:1")
    options = parser.parse_args()
    podman = shutil.which("podman")
    if podman is None:
        raise SystemExit("podman is not installed")
    with tempfile.TemporaryDirectory(prefix="flwd-bench-") as tmp:
        root = Path(tmp)
        conf = root / "containers.conf"
        conf.write_text(CONF)
        os.environ.setdefault("CONTAINERS_CONF", str(conf))
        policy = root / "policy.yaml"
        policy.write_text("verify_signatures: disabled\n")
        os.environ["FLWD_POLICY_FILE"] = str(policy)
        if subprocess.run([podman, "image", "exists", options.image]).returncode != 0:
            raise SystemExit(f"image {options.image} is missing: see docs/containers.md")
        workspace = root / "ws"
        write_job(workspace, "trivial", f"executor: container\ncontainer:\n"
                  f"  image: {options.image}\n", {"100_main.sh": "#!/bin/sh\necho hi\n"})
        data_dir = root / "data"
        env = {**os.environ, "NO_COLOR": "1", "FLWD_DATA_DIR": str(data_dir)}
        direct = [podman, "run", "--rm", "--init", "--pull=never", "--cap-drop=ALL",
                  "--security-opt=no-new-privileges", "--read-only", "--network", "none",
                  "--pids-limit=512", "--volume", f"{workspace}:{workspace}:ro",
                  options.image, "sh", "-c", "echo hi"]
        cli = [str(Path(sys.executable).parent / "flwd"), "trivial"]
        timings: dict[str, list[float]] = {"podman run (direct)": [], "flwd CLI process": []}
        for _ in range(2):
            time_command(direct, cwd=workspace, env=env)
            time_command(cli, cwd=workspace, env=env)
        for _ in range(options.runs):
            timings["podman run (direct)"].append(time_command(direct, cwd=workspace, env=env))
            timings["flwd CLI process"].append(time_command(cli, cwd=workspace, env=env))
        os.environ["FLWD_DATA_DIR"] = str(data_dir)
        timings["flwd engine (as serve)"] = trio.run(_engine_runs, workspace, data_dir,
                                                     options.runs)
        header(f"container_overhead (median of {options.runs} runs; image {options.image})")
        base = median(timings["podman run (direct)"])
        print(f"{'path':26} {'median ms':>10} {'p95 ms':>8} {'overhead ms':>12}")
        for name, values in timings.items():
            print(f"{name:26} {median(values) * 1000:10.1f} "
                  f"{percentile(values, 0.95) * 1000:8.1f} "
                  f"{(median(values) - base) * 1000:12.1f}")
        overhead = (median(timings["flwd engine (as serve)"]) - base) * 1000
        verdict = "meets" if overhead <= TARGET_MS else "misses"
        print(f"engine overhead {overhead:.1f} ms {verdict} the target of <= {TARGET_MS:.0f} ms")
        record("container_overhead", "trivial container job through flwd (median)",
               median(timings["flwd engine (as serve)"]) * 1000, "ms",
               baseline=("podman run direct", base * 1000),
               target=f"overhead <= {TARGET_MS:.0f} ms ({overhead:.0f} ms)",
               met=overhead <= TARGET_MS)


if __name__ == "__main__":
    main()
