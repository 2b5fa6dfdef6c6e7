"""The Core DB contract for history queries (every backend, through the Store port only):
argument filters (``arg.NAME=VALUE``, see ``flwd/store/_filter.py``) and trigger filters
select the same runs whichever database answers them."""

from __future__ import annotations

from typing import Any

import pytest

from flwd.store import SECRET_MARK, Store, run_filter

from .test_contract import T0, run_row

RUNS: list[tuple[str, dict[str, Any], dict[str, str] | None]] = [
    ("run-1", {"name": "alice", "count": 5, "loud": True, "tags": ["a", "b"],
               "env": {"region": "eu", "n": 2}, "token": SECRET_MARK},
     {"kind": "schedule", "name": "nightly"}),
    ("run-2", {"name": "bob", "count": 5.0, "loud": False, "tags": [],
               "env": {"region": "us"}, "ratio": 0.25},
     {"kind": "hook", "name": "gh"}),
    ("run-3", {"name": "5", "count": "7", "tags": ["5", 7], "big": 9007199254740993,
               "note": "it's 100% \"quoted\" é"}, None),
]


@pytest.fixture
def filtered(store: Store) -> Store:
    store.append([run_row(run_id, created=T0 + index, args=args, trigger=trigger)
                  for index, (run_id, args, trigger) in enumerate(RUNS)])
    return store


@pytest.mark.parametrize(("args", "expected"), [
    ([("name", "alice")], ["run-1"]),
    ([("count", "5")], ["run-2", "run-1"]),  # 5 and 5.0 are one number
    ([("count", "5.0")], ["run-2", "run-1"]),
    ([("name", "5")], ["run-3"]),  # text as it is
    ([("count", "7")], ["run-3"]),  # a string holding digits is that text
    ([("loud", "true")], ["run-1"]),
    ([("loud", "false")], ["run-2"]),
    ([("tags", "b")], ["run-1"]),  # an array's element
    ([("tags", "7")], ["run-3"]),
    ([("tags", "5")], ["run-3"]),
    ([("env", "region=eu")], ["run-1"]),  # an object's entry
    ([("env", "n=2")], ["run-1"]),
    ([("env", "region=us")], ["run-2"]),
    ([("env", "eu")], []),  # an entry is KEY=VALUE
    ([("ratio", "0.25")], ["run-2"]),
    ([("big", "9007199254740993")], ["run-3"]),
    ([("note", "it's 100% \"quoted\" é")], ["run-3"]),
    ([("token", SECRET_MARK)], []),  # a secret never matches, not even its mark
    ([("missing", "x")], []),
    ([("name", "alice"), ("count", "5")], ["run-1"]),  # every filter holds
    ([("name", "alice"), ("count", "7")], []),
])
def test_argument_filters(filtered: Store, args: list[tuple[str, str]],
                          expected: list[str]) -> None:
    query = run_filter(args=args)
    assert [run.id for run in filtered.list_runs(query)] == expected
    assert filtered.count_runs(query) == len(expected)


@pytest.mark.parametrize(("trigger", "expected"), [
    ("schedule", ["run-1"]),
    ("schedule:nightly", ["run-1"]),
    ("schedule:other", []),
    ("hook", ["run-2"]),
    ("hook:gh", ["run-2"]),
    ("none", ["run-3"]),
])
def test_trigger_filters(filtered: Store, trigger: str, expected: list[str]) -> None:
    query = run_filter(trigger=trigger)
    assert [run.id for run in filtered.list_runs(query)] == expected
    assert filtered.count_runs(query) == len(expected)


def test_a_job_id_matches_in_any_case(filtered: Store) -> None:
    assert len(filtered.list_runs(run_filter(job_id="DEMO"))) == 3
