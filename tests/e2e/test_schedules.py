"""Schedules end to end: a real ``flwd :serve`` firing ``@every 1s`` (no duplicate, no gap),
a downtime caught up exactly (``misfire: all``), pause/resume/trigger through the API and
the CLI (a pause survives a restart), and a bad schedule as a clear discovery error.

Timing on a loaded machine: counts are derived from the fire times and the watermark
the server left, never from a sleep; every wait is a bounded poll with a deadline.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from flwd.settings import Settings
from tests.conftest import run_cli, scrape, write_job

DEV = {"Authorization": "Bearer dev-token"}
#: Seconds a poll waits between two looks (bounded loops, generous deadlines).
POLL = 0.1


def fire_time(run: dict[str, Any]) -> float:
    text = run["trigger"]["fire_at"]
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def scheduled_runs(url: str, job: str = "tick") -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/runs", params={"job_id": job, "per_page": 200}, headers=DEV,
                         timeout=30)
    assert response.status_code == 200, response.text
    return [run for run in response.json() if (run.get("trigger") or {}).get("kind") == "schedule"]


def wait_until(condition, *, deadline: float = 60.0, what: str = "") -> Any:
    stop = time.monotonic() + deadline
    while time.monotonic() < stop:
        value = condition()
        if value:
            return value
        threading.Event().wait(POLL)
    raise AssertionError(f"not within {deadline} s: {what}")


def tick(workspace: Path, **options: str) -> None:
    extra = "".join(f"\n    {key}: {value}" for key, value in options.items())
    write_job(workspace, "tick", f'schedule:\n  - cron: "@every 1s"{extra}\n',
              {"100_tick.sh": "echo tick\n"})


def assert_consecutive(fires: list[float]) -> None:
    assert len(fires) == len(set(fires)), "a fire time twice: a duplicate run"
    ordered = sorted(fires)
    assert ordered == [ordered[0] + index for index in range(len(ordered))], (
        "not consecutive seconds: a fire was lost")


def test_every_second_fires_each_second_once(server_factory, workspace: Path) -> None:
    tick(workspace, overlap="allow")
    server = server_factory("--dev")
    runs = wait_until(lambda: (found := scheduled_runs(server.url)) and len(found) >= 5
                      and found, what="5 fires")
    fires = [fire_time(run) for run in runs]
    assert_consecutive(fires)
    assert all(run["trigger"] == {"kind": "schedule", "name": "tick",
                                  "fire_at": run["trigger"]["fire_at"]} for run in runs)
    # Each run was created at (or just after) its fire time: ~N fires in ~N seconds.
    created = [datetime.fromisoformat(run["created_at"].replace("Z", "+00:00")).timestamp()
               for run in runs]
    assert all(0 <= made - fire < 30 for made, fire in zip(created, fires, strict=True))
    metrics = scrape(server.url)
    assert metrics[("flwd_schedule_fires_total", frozenset({("outcome", "fired")}))] >= 5
    assert metrics[("flwd_schedule_lag_seconds_count", frozenset())] >= 5


def test_a_downtime_is_caught_up_exactly(server_factory, workspace: Path, data_dir: Path
                                         ) -> None:
    tick(workspace, misfire="all", overlap="allow")
    first = server_factory("--dev")
    wait_until(lambda: len(scheduled_runs(first.url)) >= 2, what="2 fires")
    first.stop()
    settings = Settings(workspace=workspace, scripts_root=workspace / "scripts",
                        data_dir=data_dir)
    store = settings.open_store()
    watermark = store.schedule_states(settings.workspace_key)["tick"].watermark
    assert watermark is not None
    before = {fire_time(run.to_json()) for run in store.list_runs(limit=500) if run.trigger}
    assert max(before) == watermark
    # The downtime itself: 3 s of wall clock with no server (this is the scenario being
    # tested, not a wait for something to happen).
    threading.Event().wait(max(0.0, watermark + 3.5 - time.time()))
    second = server_factory("--dev")
    caught = wait_until(lambda: (runs := scheduled_runs(second.url)) and any(
        not run["trigger"].get("catchup") and fire_time(run) > watermark for run in runs)
        and runs, what="a watched fire after the restart")
    after = [run for run in caught if fire_time(run) > watermark]
    catchups = sorted(fire_time(run) for run in after if run["trigger"].get("catchup"))
    watched = sorted(fire_time(run) for run in after if not run["trigger"].get("catchup"))
    # Exactly the fires between the watermark and the restart, each once, then the
    # watched ones: no gap and no duplicate across the downtime.
    assert len(catchups) >= 3
    assert catchups == [watermark + index for index in range(1, len(catchups) + 1)]
    assert watched[0] == catchups[-1] + 1
    assert_consecutive([*before, *catchups, *watched])
    events = [record for record in store.read_events(None, limit=5000)
              if record.type == "schedule.catchup"]
    assert [(event.data["missed"], event.data["started"]) for event in events] == [
        (len(catchups), len(catchups))]
    assert events[0].data["reason"] == "flwd was not running" and events[0].run_id == ""


def test_pause_resume_trigger_through_the_api_and_the_cli(server_factory, workspace: Path,
                                                          data_dir: Path) -> None:
    write_job(workspace, "backup", """\
argspec: {args: [{name: target, type: string, required: true}]}
schedule:
  - {name: nightly, cron: "30 2 * * *", timezone: Europe/Berlin, args: {target: /srv}}
""", {"100_backup.sh": 'echo "backing up $ARG_TARGET"\n'})
    server = server_factory("--dev")
    listing = httpx.get(f"{server.url}/schedules", headers=DEV, timeout=30).json()
    (nightly,) = listing["schedules"]
    assert (nightly["name"], nightly["timezone"], nightly["status"]) == (
        "nightly", "Europe/Berlin", "active")
    assert [fire["at"][11:16] for fire in nightly["next_fires"]] == ["02:30"] * 3
    paused = httpx.post(f"{server.url}/schedules/nightly:pause", headers=DEV, timeout=30)
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    jobs = httpx.get(f"{server.url}/jobs", headers=DEV, timeout=30).json()
    assert "next_fire" not in next(job for job in jobs if job["id"] == "backup")
    missing = httpx.post(f"{server.url}/schedules/nope:trigger", headers=DEV, timeout=30)
    assert missing.status_code == 404
    assert missing.json()["code"] == "schedule.not.found"
    assert missing.headers["content-type"] == "application/problem+json"

    # The pause survives a restart.
    server.stop()
    server = server_factory("--dev")
    again = httpx.get(f"{server.url}/schedules/nightly", headers=DEV, timeout=30).json()
    assert again["paused"] is True

    remote = {"FLWD_SERVER": server.url, "FLWD_TOKEN": "dev-token"}
    resumed = run_cli([":schedules", "resume", "nightly"], cwd=workspace, data_dir=data_dir,
                      **remote)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith("Schedule nightly resumed; next fire ")
    assert "02:30:00 +01:00 Europe/Berlin" in resumed.stdout or \
        "02:30:00 +02:00 Europe/Berlin" in resumed.stdout
    fired = run_cli([":schedules", "trigger", "nightly"], cwd=workspace, data_dir=data_dir,
                    **remote)
    assert (fired.returncode, fired.stdout) == (0, "backing up /srv\n"), fired.stderr
    # Locally, while the server owns the data dir: refused, with the command to use.
    local = run_cli([":schedules", "trigger", "nightly"], cwd=workspace, data_dir=data_dir)
    assert local.returncode == 2
    assert f"flwd --server {server.url} :schedules trigger nightly" in local.stderr
    runs = scheduled_runs(server.url, "backup")
    assert len(runs) == 1 and runs[0]["trigger"]["manual"] is True
    shown = run_cli([":schedules"], cwd=workspace, data_dir=data_dir, **remote)
    assert "nightly  job backup  30 2 * * *  Europe/Berlin  active" in shown.stdout
    assert f"manual  {runs[0]['id']} (completed)" in shown.stdout
    listed = run_cli([":jobs", "--json"], cwd=workspace, data_dir=data_dir, **remote)
    job = next(job for job in json.loads(listed.stdout)["jobs"] if job["id"] == "backup")
    assert job["next_fire"]["schedule"] == "nightly"


def test_a_bad_schedule_is_a_clear_discovery_error(server_factory, workspace: Path,
                                                   data_dir: Path) -> None:
    write_job(workspace, "backup", """\
schedule:
  - {name: nightly, cron: "30 2 * *", timezone: Europe/Berln}
""", {})
    local = run_cli([":jobs"], cwd=workspace, data_dir=data_dir)
    assert local.returncode == 0
    assert ("flwd: error: scripts/backup/config.d/config.yaml: schedule[0].cron: '30 2 * *' "
            "has 4 fields; a cron expression has 5 (minute hour day-of-month month "
            "day-of-week) (schedule 'nightly'); schedule[0].timezone: unknown time zone "
            "'Europe/Berln'; did you mean 'Europe/Berlin'? (schedule 'nightly') [E_CONFIG]"
            ) in local.stderr
    server = server_factory("--dev")
    discovery = httpx.get(f"{server.url}/discovery", headers=DEV, timeout=30).json()
    assert any("schedule[0].timezone" in issue["error"] for issue in discovery["errors"])
    assert httpx.get(f"{server.url}/schedules", headers=DEV, timeout=30).json()[
        "schedules"] == []
