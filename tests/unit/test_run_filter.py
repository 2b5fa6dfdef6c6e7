"""History filters from user text (sans-IO): ``run_filter`` and ``parse_ts``.

What the store makes of a filter is the contract suite's (tests/store/test_contract.py);
the query string and the CLI flags are tests/e2e/test_run_filters.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flwd.errors import RunFilterInvalid
from flwd.events import format_ts, parse_ts
from flwd.jobs import SECRET_MARK as JOBS_SECRET_MARK
from flwd.store import (
    MAX_ARG_FILTERS,
    MAX_ARG_VALUE,
    MAX_TRIGGER_NAME,
    SECRET_MARK,
    RunFilter,
    run_filter,
)


def test_the_store_knows_how_a_secret_is_stored() -> None:
    assert SECRET_MARK == JOBS_SECRET_MARK


def test_text_becomes_a_filter() -> None:
    assert run_filter() == RunFilter()
    assert run_filter(job_id="", statuses=[]) == RunFilter()
    assert run_filter(job_id="demo", statuses=["failed,canceled", "failed"],
                      workspace="/w", since="2026-11-24T08:00:00Z",
                      until="2026-11-24T09:00:00.5+01:00",
                      args=[("name", "world"), ("tags", "a=b"), ("name", "")]) == RunFilter(
        job_id="demo", statuses=("failed", "canceled"), workspace="/w",
        since=parse_ts("2026-11-24T08:00:00Z"), until=parse_ts("2026-11-24T08:00:00.5Z"),
        args=(("name", "world"), ("tags", "a=b"), ("name", "")))


def errors_of(**text: object) -> list[dict[str, str]]:
    with pytest.raises(RunFilterInvalid) as caught:
        run_filter(**text)  # type: ignore[arg-type]
    assert caught.value.problem.status == 400
    assert caught.value.detail.startswith(f"invalid run filter {caught.value.errors[0]['arg']}")
    return caught.value.errors


def test_every_bad_part_is_named() -> None:
    errors = errors_of(statuses=["done,failed,"], since="yesterday", until="2026-02-30T00:00:00Z",
                       workspace="relative", args=[("", "x"), ("1x", "y"), ("ok", "\0")])
    assert [error["arg"] for error in errors] == [
        "status", "status", "workspace", "since", "until", "arg.", "arg.1x", "arg.ok"]
    assert "'done' is not a status: use one of queued, running" in errors[0]["message"]
    assert "'yesterday' is not an RFC 3339 date-time" in errors[3]["message"]
    assert errors[5]["message"] == "name the argument: arg.NAME=VALUE"


@pytest.mark.parametrize("args", [
    [("a", "x")] * (MAX_ARG_FILTERS + 1),
    [("a", "x" * (MAX_ARG_VALUE + 1))],
    [("a" * 200, "x")],
    [("ä", "x")],
    [("a b", "x")],
])
def test_hostile_argument_filters_are_refused_and_bounded(args: list[tuple[str, str]]) -> None:
    errors = errors_of(args=args)
    assert len(errors) == 1 and len(errors[0]["arg"]) <= 4 + 128
    assert len(errors[0]["message"]) < 200  # a huge value is never echoed


def test_a_trigger_filter_is_a_kind_and_maybe_a_name() -> None:
    assert run_filter(trigger="hook").trigger == ("hook", None)
    assert run_filter(trigger="schedule:backup#0").trigger == ("schedule", "backup#0")
    assert run_filter(trigger="hook:a:b").trigger == ("hook", "a:b")  # the first colon splits
    assert run_filter(trigger="none").trigger == ("none", None)
    assert run_filter(trigger="").trigger is None
    for text, says in [("cron", "'cron' is not a trigger kind: use schedule, hook, none"),
                       ("none:x", "none has no name"), ("hook:", "name the hook after the colon"),
                       ("schedule:" + "n" * (MAX_TRIGGER_NAME + 1), "at most"),
                       ("hook:a\0b", "NUL"), ("x" * 5000, "is not a trigger kind")]:
        [error] = errors_of(trigger=text)
        assert error["arg"] == "trigger" and says in error["message"], (text, error)
        assert len(error["message"]) < 200  # a huge value is never echoed


def test_unicode_values_are_fine() -> None:
    assert run_filter(args=[("name", "wörld ✓ 𝄞")]).args == (("name", "wörld ✓ 𝄞"),)


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-24T19:48:13Z", datetime(2026, 11, 24, 19, 48, 13, tzinfo=UTC).timestamp()),
    ("2026-11-24t20:48:13.25+01:00", datetime(2026, 11, 24, 19, 48, 13, 250000,
                                                tzinfo=UTC).timestamp()),
    ("2026-11-24 19:48:13z", datetime(2026, 11, 24, 19, 48, 13, tzinfo=UTC).timestamp()),
    ("1970-01-01T00:00:00.123456789-00:30", 1800.123456),
    ("2016-12-31T23:59:60Z", datetime(2017, 1, 1, tzinfo=UTC).timestamp()),
    # Year 0000 (before datetime's year 1) is a leap year: 31 + 29 days after 0000-01-01.
    ("0000-03-01T00:00:00Z", -62167219200.0 + 60 * 86400),
])
def test_rfc3339_date_times(text: str, expected: float) -> None:
    assert parse_ts(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("text", [
    "2026-11-24", "2026-11-24T19:48:13", "2026-11-24T19:48Z", "2026-13-01T00:00:00Z",
    "2025-02-29T00:00:00Z", "2026-11-24T24:00:00Z", "2026-11-24T19:48:13+24:00",
    "٢٠٢٦-11-24T19:48:13Z", "2026-11-24T19:48:13Z " * 4, "now", ""])
def test_what_is_not_a_date_time(text: str) -> None:
    with pytest.raises(ValueError, match="not"):
        parse_ts(text)


@given(st.floats(min_value=-3e10, max_value=2e11, allow_nan=False))
def test_format_and_parse_agree(ts: float) -> None:
    ts = round(ts, 6)
    assert parse_ts(format_ts(ts)) == pytest.approx(ts, abs=2e-6)
