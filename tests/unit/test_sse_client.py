"""The remote CLI's sans-IO parts: the SSE decoder, envelope → record, problems → errors."""

from __future__ import annotations

import json
import random

import httpx
import pytest

from flwd.cli._client import (
    Client,
    _envelope,
    backoff,
    parse_ts,
    record_from_envelope,
    remote_args,
    run_from_json,
)
from flwd.cli._context import normalize_server_url
from flwd.cli._sse_client import SSEDecoder, SSEFrame
from flwd.errors import RemoteProblem, ServerUnreachable, UsageError
from flwd.events import EventRecord, RunRow, format_ts
from flwd.http._sse import PREAMBLE, frames
from flwd.jobs import Arg


def decode(*chunks: bytes) -> list[SSEFrame]:
    decoder = SSEDecoder()
    out: list[SSEFrame] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out


# -- SSEDecoder ----------------------------------------------------------------------------


def test_one_frame_with_id_event_and_data() -> None:
    assert decode(b"id: 7\nevent: step.log\ndata: {\"a\": 1}\n\n") == [
        SSEFrame("step.log", '{"a": 1}', "7")]


def test_several_frames_in_one_chunk_and_comments_are_skipped() -> None:
    stream = b"retry: 2000\n:connected\n\nid: 1\ndata: a\n\n:keep-alive\n\nid: 2\ndata: b\n\n"
    decoder = SSEDecoder()
    assert decoder.feed(stream) == [SSEFrame("message", "a", "1"), SSEFrame("message", "b", "2")]
    assert decoder.retry == 2000
    assert decoder.last_event_id == "2"


def test_nothing_is_dispatched_before_the_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: 1\ndata: partial") == []
    assert decoder.feed(b" line\n") == []
    assert decoder.feed(b"\n") == [SSEFrame("message", "partial line", "1")]


def test_frames_split_at_every_byte_position_decode_the_same() -> None:
    stream = (b"retry: 2000\r\n:connected\r\n\r\nid: 1\r\nevent: a\r\ndata: x\r\ndata: y\r\n\r\n"
              b"id: 2\rdata: \xc3\xa9t\xc3\xa9\r\r: keep-alive\n\nid: 3\ndata: z\n\n")
    whole = decode(stream)
    assert whole == [SSEFrame("a", "x\ny", "1"), SSEFrame("message", "été", "2"),
                     SSEFrame("message", "z", "3")]
    for cut in range(len(stream) + 1):
        assert decode(stream[:cut], stream[cut:]) == whole, cut
    assert decode(*[stream[i:i + 1] for i in range(len(stream))]) == whole
    rng = random.Random(7)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(stream)), 5))
        parts = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        assert decode(*parts) == whole


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    # Were "\r" | "\n" two line ends, the empty line between would dispatch "a" alone.
    assert decode(b"data: a\r", b"\ndata: b\r\n\r\n") == [SSEFrame("message", "a\nb")]


def test_cr_only_line_ends_dispatch_without_waiting_for_more_data() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\r") == [SSEFrame("message", "a")]
    assert decoder.feed(b"\ndata: b\r\r") == [SSEFrame("message", "b")]


def test_field_parsing_rules() -> None:
    frames_ = decode(b"data\n\n", b"data:no-space\n\n", b"data:  two spaces\n\n",
                     b"event\ndata: x\n\n", b"unknown: field\ndata: y\n\n")
    assert [f.data for f in frames_] == ["", "no-space", " two spaces", "x", "y"]
    assert frames_[3].event == "message"  # an empty event name means "message"


def test_frames_without_data_are_not_dispatched_but_keep_their_id() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: 5\n\nevent: x\n\n") == []
    assert decoder.last_event_id == "5"
    assert decoder.feed(b"data: d\n\n") == [SSEFrame("message", "d", "5")]


def test_id_with_nul_and_bad_retry_are_ignored() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"id: 1\nretry: 100\ndata: a\n\nid: 2\x003\nretry: soon\ndata: b\n\n")
    assert decoder.last_event_id == "1" and decoder.retry == 100


def test_unterminated_frame_is_dropped_at_close() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: 1\ndata: whole\n\nid: 2\ndata: cut") == [
        SSEFrame("message", "whole", "1")]
    assert decoder.close() is True
    assert decoder.close() is False


def test_bom_is_stripped_even_when_split() -> None:
    assert decode(b"\xef", b"\xbb\xbfdata: a\n\n") == [SSEFrame("message", "a")]
    assert decode(b"\xef\xbb\xbfdata: a\n\n") == [SSEFrame("message", "a")]


def test_invalid_utf8_is_replaced_and_overlong_lines_refused() -> None:
    assert decode(b"data: \xff\n\n") == [SSEFrame("message", "\ufffd")]
    decoder = SSEDecoder(max_line=10)
    with pytest.raises(ValueError, match="longer than 10 bytes"):
        decoder.feed(b"data: " + b"x" * 20)


# -- the server's frames, decoded ----------------------------------------------------------


def _records() -> list[EventRecord]:
    ts = 1_764_000_000.123456
    return [
        EventRecord("run-1", "demo", "run.start", ts, {"status": "running", "steps": ["s"]},
                    seq=3),
        EventRecord("run-1", "demo", "step.log", ts + 1, {"step": "s", "channel": "stdout"},
                    lines=b'plain\nwith "quotes" \\ and \xc3\xa9\n', n=3, seq=4),
        EventRecord("run-1", "demo", "run.finish", ts + 2,
                    {"status": "completed", "finished_at": format_ts(ts + 2)}, seq=7),
    ]


def test_server_frames_decode_to_records_that_render_the_same_ndjson() -> None:
    """SSE (server) → frames (decoder) → records (client) → NDJSON == the server's NDJSON."""
    records = _records()
    stream = PREAMBLE + b"".join(frames(record) for record in records)
    decoded = [record_from_envelope(json.loads(frame.data)) for frame in decode(stream)]
    assert [record.seq for record in decoded] == [3, 4, 5, 6, 7]
    assert b"".join(r.ndjson() for r in decoded) == b"".join(r.ndjson() for r in records)
    logs = [record for record in decoded if record.type == "step.log"]
    assert b"\n".join(r.lines or b"" for r in logs) == records[1].lines
    assert all(r.data == {"step": "s", "channel": "stdout"} for r in logs)


def test_timestamps_round_trip_exactly() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        ts = rng.uniform(1.5e9, 2.5e9)
        text = format_ts(ts)
        assert format_ts(parse_ts(text)) == text


def test_envelope_filter() -> None:
    assert _envelope('{"seq": 1, "type": "run.start"}') == {"seq": 1, "type": "run.start"}
    for bad in ("", "  ", "not json", "[1]", '{"seq": "1", "type": "x"}', '{"seq": 1}'):
        assert _envelope(bad) is None


def test_run_json_round_trip_for_rendering() -> None:
    row = RunRow(id="run-1", job_id="demo", status="failed", created_at=1_764_000_000.5,
                 started_at=1_764_000_001.25, finished_at=1_764_000_002.0, exit_code=3,
                 error="boom", profile="secure", args={"name": "x"})
    assert run_from_json(row.to_json()).to_json() == row.to_json()


# -- problems → errors, argspecs, URLs ------------------------------------------------------


def _response(status: int, document: object | None = None, **headers: str) -> httpx.Response:
    if document is None:
        return httpx.Response(status, text="<html>oops</html>",
                              headers={"Content-Type": "text/html", **headers})
    return httpx.Response(status, content=json.dumps(document).encode(),
                          headers={"Content-Type": "application/problem+json", **headers})


def _problem(status: int, code: str, detail: str, **extra: object) -> dict[str, object]:
    return {"type": "x", "title": "t", "status": status, "detail": detail, "instance": "/",
            "code": code, **extra}


@pytest.mark.parametrize(("status", "code", "exit_status"), [
    (400, "invalid-request-body", 2), (404, "job.not.found", 2), (404, "run.not.found", 2),
    (409, "idempotency-key-conflict", 2), (422, "E_ARGS", 2), (422, "policy.denied", 2),
    (409, "run.owned.elsewhere", 1), (410, "cursor-expired", 1), (415, "whatever", 2),
])
def test_problem_exit_statuses(status: int, code: str, exit_status: int) -> None:
    error = Client("http://h:1").problem(_response(status, _problem(status, code, "it broke")))
    assert isinstance(error, RemoteProblem)
    assert error.problem.exit_status == exit_status
    assert error.one_line() == "it broke"


def test_argument_problems_list_every_field_like_local_ones() -> None:
    document = _problem(422, "E_ARGS", "2 invalid arguments for job demo: --name: required",
                        errors=[{"arg": "name", "message": "required"},
                                {"arg": "tags", "message": "must be a list"}])
    error = Client("http://h:1").problem(_response(422, document))
    assert error.field_lines() == ["--tags: must be a list"]


@pytest.mark.parametrize("token", [None, "flwd_wrong-secret-token"])
def test_unauthorized_hints_at_flwd_token_and_never_shows_it(token: str | None) -> None:
    client = Client("http://h:1", token=token or "")
    error = client.problem(_response(401, _problem(401, "unauthorized", "unknown or revoked token"),
                                     **{"WWW-Authenticate": "Bearer"}))
    assert error.problem.exit_status == 2
    text = error.one_line()
    assert "FLWD_TOKEN" in text and "http://h:1" in text
    assert "wrong-secret" not in text


def test_forbidden_names_the_scope() -> None:
    error = Client("http://h:1", token="t").problem(_response(
        403, _problem(403, "forbidden", "missing required scope: runs:read")))
    assert error.problem.exit_status == 2
    assert "runs:read" in error.one_line() and "FLWD_TOKEN" in error.one_line()


@pytest.mark.parametrize("response", [
    _response(500, _problem(500, "internal", "an unexpected error occurred")),
    _response(502), _response(503, _problem(503, "E_STORAGE", "storage unavailable")),
])
def test_server_errors_exit_1(response: httpx.Response) -> None:
    error = Client("http://h:1").problem(response)
    assert isinstance(error, ServerUnreachable)
    assert error.problem.exit_status == 1
    assert error.one_line().startswith("cannot reach the flwd server at http://h:1: ")


def test_non_problem_4xx_still_reads_as_one_line() -> None:
    error = Client("http://h:1").problem(_response(404))
    assert error.problem.exit_status == 2 and "HTTP 404" in error.one_line()


def test_remote_argspec_round_trips_through_arg_json() -> None:
    args = [
        Arg(name="name", type="string", required=True, min_length=1, max_length=9,
            pattern="^[a-z]+$", description="who"),
        Arg(name="count", type="integer", default=2, minimum=1, maximum=5),
        Arg(name="tags", type="array", items_type="string", items_enum=["a", "b"]),
        Arg(name="meta", type="object", value_type="integer"),
        Arg(name="level", type="string", enum=["info", "debug"], default="info"),
        Arg(name="token_value", type="string", format="secret"),
        Arg(name="loud", type="boolean", default=False),
    ]
    job = {"id": "j", "args": [{**arg.to_json(), "x-future-key": 1} for arg in args]}
    assert [arg.to_json() for arg in remote_args(job)] == [arg.to_json() for arg in args]


def test_unusable_remote_argspec_is_one_clear_error() -> None:
    with pytest.raises(ServerUnreachable, match="argspec of job j"):
        remote_args({"id": "j", "args": [{"name": "x", "type": "quaternion"}]})


@pytest.mark.parametrize(("raw", "url"), [
    ("127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
    (" https://flwd.example.com/api// ", "https://flwd.example.com/api"),
    ("[::1]:9000", "http://[::1]:9000"),
])
def test_server_urls_are_normalised(raw: str, url: str) -> None:
    assert normalize_server_url(raw) == url


@pytest.mark.parametrize("raw", ["ftp://host", "http://", "http://host:notaport",
                                 "http://host/?q=1", "http://user:secret@host"])
def test_bad_server_urls_are_usage_errors(raw: str) -> None:
    with pytest.raises(UsageError) as caught:
        normalize_server_url(raw)
    assert "secret" not in caught.value.one_line()


def test_backoff_grows_and_is_bounded() -> None:
    delays = [backoff(n) for n in range(1, 11)]
    assert delays == sorted(delays) and delays[0] <= 0.1 and max(delays) == 5.0
    assert sum(delays) < 30
