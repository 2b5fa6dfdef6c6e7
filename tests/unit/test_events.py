"""Events: chunk records, their envelopes, and the NDJSON framing (fast and slow paths)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flwd.events import (
    RUN_FINISH,
    STEP_LOG,
    TERMINAL_STATUSES,
    EventRecord,
    RunRow,
    _is_safe,
    format_ts,
)

TS = 1_764_013_693.123456  # 2025-11-24T19:48:13.123456Z


def chunk(lines: list[bytes], *, seq: int = 10, step: Any = "100_main.sh",
          channel: Any = "stdout", run_id: str = "run-01ABC", job_id: str = "demo") -> EventRecord:
    return EventRecord(run_id=run_id, job_id=job_id, type=STEP_LOG, ts=TS,
                       data={"step": step, "channel": channel},
                       lines=b"\n".join(lines), n=len(lines), seq=seq)


def parsed(record: EventRecord, after: int = 0) -> list[dict[str, Any]]:
    return [json.loads(line) for line in record.ndjson(after).splitlines()]


# -- timestamps and seq bookkeeping ------------------------------------------

def test_format_ts_is_rfc3339_utc_with_microseconds():
    assert format_ts(TS) == "2025-11-24T19:48:13.123456Z"
    assert format_ts(0) == "1970-01-01T00:00:00.000000Z"


def test_last_seq_covers_every_line_of_a_chunk():
    record = chunk([b"a", b"b", b"c"], seq=7)
    assert record.last_seq == 9
    single = EventRecord("run-1", "demo", RUN_FINISH, TS, {"status": "completed"}, seq=4)
    assert single.n == 1
    assert single.last_seq == 4


def test_line_list_of_a_plain_event_is_empty_and_of_a_chunk_keeps_empty_lines():
    assert EventRecord("r", "j", RUN_FINISH, TS, {}).line_list() == []
    assert chunk([b"", b"x", b""]).line_list() == [b"", b"x", b""]


def test_terminal_statuses():
    assert {"completed", "failed", "canceled", "interrupted"} == TERMINAL_STATUSES
    assert "running" not in TERMINAL_STATUSES


# -- envelopes -----------------------------------------------------------------

def test_plain_event_envelope_and_ndjson():
    record = EventRecord("run-1", "demo", RUN_FINISH, TS,
                         {"status": "completed", "exit_code": 0, "note": 'é "q"'}, seq=42)
    envelope = {"seq": 42, "run_id": "run-1", "job_id": "demo", "type": "run.finish",
                "ts": "2025-11-24T19:48:13.123456Z",
                "data": {"status": "completed", "exit_code": 0, "note": 'é "q"'}}
    assert record.envelope() == envelope
    assert list(record.iter_events()) == [envelope]
    out = record.ndjson()
    assert out.endswith(b"\n")
    assert out.count(b"\n") == 1
    assert json.loads(out) == envelope
    # ensure_ascii=False: non-ASCII travels as UTF-8, not as \u escapes
    assert "é".encode() in out


def test_plain_event_is_skipped_at_or_below_after():
    record = EventRecord("run-1", "demo", RUN_FINISH, TS, {"status": "failed"}, seq=5)
    assert list(record.iter_events(after=4)) != []
    assert list(record.iter_events(after=5)) == []
    assert list(record.iter_events(after=9)) == []
    assert record.ndjson(after=5) == b""
    assert json.loads(record.ndjson(after=4))["seq"] == 5


def test_chunk_expands_to_one_step_log_envelope_per_line():
    record = chunk([b"first", b"", b"third"], seq=10)
    events = list(record.iter_events())
    assert [e["seq"] for e in events] == [10, 11, 12]
    assert [e["data"]["message"] for e in events] == ["first", "", "third"]
    for event in events:
        assert event["type"] == "step.log"
        assert event["run_id"] == "run-01ABC"
        assert event["job_id"] == "demo"
        assert event["ts"] == "2025-11-24T19:48:13.123456Z"
        assert event["data"]["step"] == "100_main.sh"
        assert event["data"]["channel"] == "stdout"
        assert set(event["data"]) == {"step", "channel", "message"}


def test_chunk_messages_decode_invalid_utf8_with_replacement():
    record = chunk([b"ok \xff\xfe end"])
    (event,) = record.iter_events()
    assert event["data"]["message"] == "ok \ufffd\ufffd end"


# -- NDJSON framing: fast path (safe ASCII) and slow path --------------------

SAFE_LINES = [b"hello world", b"", b"a=1 b=2 {x} [y] 'single'", b"~!@#$%^&*()_+`-=<>?/|"]
UNSAFE_CASES = {
    "double quote": [b'say "hi"'],
    "backslash": [b"C:\\path\\to"],
    "tab": [b"a\tb"],
    "carriage return": [b"progress\r50%"],
    "nul and escape": [b"\x00\x1b[31mred\x1b[0m"],
    "del": [b"\x7f"],
    "invalid utf-8": [b"\xff\xfe\xc3"],
    "unicode": ["héllo → 世界 😀".encode()],
    "line and paragraph separators": ["a\u2028b\u2029c\x85d".encode()],
    "mixed with safe lines": [b"plain", b'quoted "x"', b"", b"plain again"],
}


def test_safe_detection():
    assert _is_safe(b"\n".join(SAFE_LINES))
    for lines in UNSAFE_CASES.values():
        assert not _is_safe(b"\n".join(lines))


def test_ndjson_fast_path_matches_iter_events():
    record = chunk(SAFE_LINES)
    assert _is_safe(record.lines or b"")
    assert parsed(record) == list(record.iter_events())
    assert len(record.ndjson().splitlines()) == len(SAFE_LINES)


@pytest.mark.parametrize("lines", list(UNSAFE_CASES.values()), ids=list(UNSAFE_CASES))
def test_ndjson_slow_path_matches_iter_events(lines):
    record = chunk(lines)
    out = record.ndjson()
    assert out.endswith(b"\n")
    assert parsed(record) == list(record.iter_events())
    assert len(out.splitlines()) == len(lines)


@pytest.mark.parametrize("lines", [SAFE_LINES, UNSAFE_CASES["mixed with safe lines"]],
                         ids=["fast", "slow"])
def test_ndjson_after_skips_inside_a_chunk(lines):
    record = chunk(lines, seq=100)
    last = 100 + len(lines) - 1
    for after in range(last + 2):
        expected = list(record.iter_events(after))
        assert parsed(record, after) == expected
        assert [e["seq"] for e in expected] == list(range(max(after + 1, 100), last + 1))
    assert record.ndjson(after=last) == b""


@pytest.mark.parametrize("lines", [[b"x"], [b'"x"']], ids=["fast", "slow"])
def test_ndjson_escapes_hostile_ids_and_step_names(lines):
    record = chunk(lines, run_id='run-"1"', job_id="a\\b", step='we"ird\n', channel=None)
    (event,) = parsed(record)
    assert event == next(record.iter_events())
    assert event["run_id"] == 'run-"1"'
    assert event["job_id"] == "a\\b"
    assert event["data"]["step"] == 'we"ird\n'
    assert event["data"]["channel"] is None


def test_single_empty_line_chunk_is_one_event():
    record = chunk([b""])
    assert parsed(record) == [next(record.iter_events())]
    assert parsed(record)[0]["data"]["message"] == ""


line_bytes = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b""))
line_lists = st.lists(
    st.one_of(line_bytes, st.text(max_size=20).map(lambda s: s.replace("\n", "").encode())),
    min_size=1, max_size=12,
)


@given(lines=line_lists, seq=st.integers(min_value=1, max_value=10**12),
       after=st.integers(min_value=0, max_value=10**12 + 20))
def test_ndjson_equals_iter_events_for_any_lines(lines, seq, after):
    record = chunk(lines, seq=seq)
    assert [json.loads(line) for line in record.ndjson().splitlines()] == list(record.iter_events())
    assert [json.loads(line) for line in record.ndjson(after).splitlines()] == list(
        record.iter_events(after))


# -- RunRow -------------------------------------------------------------------

def test_run_row_json_includes_only_what_is_known():
    row = RunRow(id="run-1", job_id="demo", status="queued", created_at=TS)
    # `workspace` is always there: null says a flwd before schema 6 ran it; so is
    # `executor` (null: a run whose plan did not say), and `started_at` (null: queued).
    assert row.to_json() == {"id": "run-1", "job_id": "demo", "status": "queued",
                             "created_at": "2025-11-24T19:48:13.123456Z", "started_at": None,
                             "workspace": None, "executor": None,
                             "result": {"resolved_args": {}}}


def test_run_row_json_full():
    row = RunRow(id="run-1", job_id="demo", status="failed", created_at=TS, started_at=TS + 1,
                 finished_at=TS + 2, exit_code=0, error="boom", profile="secure",
                 args={"name": "x"}, provenance={"source": {"type": "local"}},
                 workspace="/home/u/ws", executor="container", runtime="podman")
    out = row.to_json()
    assert out["workspace"] == "/home/u/ws"
    assert (out["executor"], out["runtime"]) == ("container", "podman")
    assert out["started_at"] == "2025-11-24T19:48:14.123456Z"
    assert out["finished_at"] == "2025-11-24T19:48:15.123456Z"
    assert out["exit_code"] == 0  # 0 is a value, not "unknown"
    assert out["error"] == "boom"
    assert out["security_profile"] == "secure"
    assert out["result"] == {"resolved_args": {"name": "x"}}
    assert out["provenance"] == {"source": {"type": "local"}}


def test_format_ts_matches_datetime_rounding() -> None:
    import random
    from datetime import UTC, datetime

    rng = random.Random(7)
    values = [rng.uniform(0, 4e9) for _ in range(20_000)]
    values += [1_700_000_000 + k * 0.5e-6 for k in range(-4, 5)]
    values += [1_700_000_000.9999995, 1_700_000_000.0000005, 12.5, 0.0, TS]
    for value in values:
        assert format_ts(value) == datetime.fromtimestamp(value, UTC).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"), value
