"""``schedule:`` in a job's config.yaml: validated when the config loads (every bad
field a discovery error naming the file, the entry and the field), resolved into named,
zoned schedules, names unique across the catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from flwd.errors import ConfigInvalid
from flwd.jobs import discover, job_schedules, parse_config, schedule_book
from flwd.schedule import Every
from tests.conftest import write_job

ARGSPEC = """\
argspec:
  args:
    - {name: name, type: string, required: true}
    - {name: count, type: integer, default: 1}
    - {name: key, type: string, format: secret}
"""


def errors(text: str) -> dict[str, str]:
    with pytest.raises(ConfigInvalid) as info:
        parse_config(text, path="scripts/backup/config.d/config.yaml")
    return {error["arg"]: error["message"] for error in info.value.errors}


def test_the_issue_example_loads() -> None:
    parsed = parse_config(ARGSPEC + """\
schedule:
  - cron: "30 2 * * 1-5"
    timezone: Europe/Berlin
    args: {name: nightly}
    misfire: run_once
    catchup_window: 6h
    overlap: skip
    jitter: 30s
    enabled: true
  - at: 2027-01-01T09:00:00+01:00
    args: {name: once, count: 3}
  - {cron: "@every 90s", args: {name: fast}, misfire: all, overlap: cancel-previous}
""", path="x")
    first, second, third = parsed.config.schedule
    assert (first.catchup_window, first.jitter, first.timezone) == (6 * 3600, 30.0, "Europe/Berlin")
    assert second.at == "2027-01-01T09:00:00+01:00" and second.misfire == "run_once"
    assert isinstance(third.when, Every) and third.overlap == "cancel_previous"
    assert parsed.warnings == []


def test_every_bad_field_is_named_with_its_entry() -> None:
    found = errors(ARGSPEC + """\
schedule:
  - name: nightly
    cron: "30 2 * * 1-5"
    timezone: Europe/Berln
    timezon: Europe/Berlin
  - cron: "61 * * * *"
  - {}
  - {cron: "@daily", at: 2027-01-01T09:00:00Z}
  - {at: 2027-01-01T09:00:00}
  - {cron: "@daily", misfire: sometimes, overlap: never, jitter: soon, enabled: "yes"}
  - {cron: "@daily", name: "a b"}
""")
    assert found == {
        "schedule[0].timezone": "unknown time zone 'Europe/Berln'; did you mean "
                                "'Europe/Berlin'? (schedule 'nightly')",
        "schedule[0].timezon": "unknown key (did you mean 'timezone'?) (schedule 'nightly')",
        "schedule[1].cron": "'61 * * * *': bad minute (field 1)",
        "schedule[2]": "give either cron: or at: (a cron expression, @daily, @every 90s, "
                       "@reboot; or one RFC 3339 instant)",
        "schedule[3]": "give either cron: or at: (a cron expression, @daily, @every 90s, "
                       "@reboot; or one RFC 3339 instant)",
        "schedule[4].at": "2027-01-01T09:00:00 has no offset: write e.g. "
                          "2027-01-01T09:00:00+01:00 or 2027-01-01T09:00:00Z",
        "schedule[5].misfire": "'sometimes' is not one of: 'skip', 'run_once' or 'all'",
        "schedule[5].overlap": "'never' is not one of: 'skip', 'queue', 'cancel_previous' "
                               "or 'allow'",
        "schedule[5].jitter": "'soon' is not a duration (seconds, or like 30s, 30m, 1h30m)",
        "schedule[5].enabled": "must be true or false (got 'yes')",
        "schedule[6].name": "'a b' is not a schedule name (a word of letters, digits, '_', "
                            "'.', '-'; at most 100 characters)",
    }


def test_args_are_checked_against_the_argspec() -> None:
    found = errors(ARGSPEC + """\
schedule:
  - {cron: "@daily", name: nightly, args: {count: "3", extra: 1}}
  - {cron: "@daily", args: {name: ok}}
  - {cron: "@daily", name: nightly, args: {name: twice}}
""")
    assert found == {
        "schedule[0].args.name": "required (schedule 'nightly')",
        "schedule[0].args.count": "must be an integer (got '3') (schedule 'nightly')",
        "schedule[0].args.extra": "unknown argument (schedule 'nightly')",
        "schedule[2].name": "'nightly' is also the name of schedule[0]",
    }


def test_a_bad_schedule_is_a_discovery_error_and_the_other_jobs_load(workspace: Path) -> None:
    write_job(workspace, "backup", 'schedule:\n  - {cron: "30 2 * *", timezone: Mars/Base}\n', {})
    write_job(workspace, "fine", 'schedule:\n  - cron: "@hourly"\n', {})
    catalog = discover(workspace / "scripts", display_base=workspace)
    assert "fine" in [job.id for job in catalog.jobs]
    assert "backup" not in [job.id for job in catalog.jobs]
    (issue,) = catalog.errors
    assert issue.path == "scripts/backup/config.d/config.yaml"
    assert issue.message == (
        "schedule[0].cron: '30 2 * *' has 4 fields; a cron expression has 5 (minute hour "
        "day-of-month month day-of-week); schedule[0].timezone: unknown time zone "
        "'Mars/Base' (like Europe/Berlin, UTC)")


def test_schedules_are_named_zoned_and_unique(workspace: Path) -> None:
    write_job(workspace, "backup", ARGSPEC + """\
schedule:
  - {cron: "30 2 * * *", args: {name: a, key: hunter2}}
  - {cron: "@weekly", timezone: America/New_York, args: {name: b}}
""", {})
    write_job(workspace, "report", 'schedule:\n  - {cron: "@daily", name: daily}\n', {})
    write_job(workspace, "other", 'schedule:\n  - {cron: "@hourly", name: daily}\n', {})
    write_job(workspace, "solo", 'schedule:\n  - {cron: "@hourly"}\n', {})
    catalog = discover(workspace / "scripts")
    first, second = job_schedules(catalog.get("backup"), "Europe/Berlin")
    assert (first.name, first.zone_name, first.zone_given) == ("backup#0", "Europe/Berlin", False)
    assert (second.name, second.zone_name, second.zone_given) == (
        "backup#1", "America/New_York", True)
    assert first.args == {"name": "a", "key": "hunter2"}
    assert first.to_json()["args"] == {"name": "a", "count": 1, "key": "[secret]"}
    book = schedule_book(catalog, "UTC")
    assert sorted(book.schedules) == ["backup#0", "backup#1", "solo"]
    assert {issue.name for issue in book.issues} == {"daily"}
    assert [issue.message for issue in book.issues if "job report" in issue.message] == [
        "schedule[0] of job report: the name 'daily' is also the name of a schedule of "
        "other (schedule[0]); none of them is scheduled (give each a distinct name:)"]
