"""The thin client's sans-IO parts and the server socket's checks (issue 17 item 1).

The identity of a thin run's output with a local run's rests on one property: a run's
records, rendered by the server into the command line's frames and copied out by the
client, are the bytes the CLI's renderer writes to stdout and stderr in a local run.
It is checked here over arbitrary output lines (bytes that are not UTF-8 included),
timestamps, event data and ways the frames are cut into reads. The client's own JSON
(on the C accelerator alone, for its start-up) is checked against :mod:`json`.
"""

from __future__ import annotations

import io
import json
import os
import socket
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flwd.cli._served import differing_variable
from flwd.daemon import CLIENT_PROTOCOL, socket_address
from flwd.daemon._lock import start_time
from flwd.errors import ListenFailed
from flwd.events import RUN_CANCELED, RUN_FINISH, RUN_START, STEP_FINISH, STEP_LOG, EventRecord
from flwd.http._local_socket import Peer, bind_local_socket, peer_allowed, peer_of
from flwd.http._terminal import Renderer
from flwd.output import RunOutput, Style
from flwd.thin._argv import Invocation, job_invocation
from flwd.thin._frames import FrameError, FrameReader, frame
from flwd.thin._http import ProtocolError, ResponseReader
from flwd.thin._json import dumps, loads
from flwd.thin._locate import server_socket
from flwd.thin._verbs import VerbLine, parse_verb

# -- the wire: records → frames → records, rendered alike ------------------------


def _render(records: list[EventRecord], *, as_json: bool, color: bool) -> tuple[bytes, bytes]:
    output = RunOutput(as_json)
    output.stdout, output.stderr = io.BytesIO(), io.BytesIO()
    output.style = Style(color)
    output.write(records)
    return output.stdout.getvalue(), output.stderr.getvalue()  # type: ignore[attr-defined]


def _through_the_wire(records: list[EventRecord], *, as_json: bool, color: bool,
                      cuts: list[int]) -> tuple[bytes, bytes]:
    """What the client writes to its stdout and stderr for ``records`` rendered by the
    server, the frames read in pieces cut at ``cuts``."""
    render = Renderer(as_json, color=color)
    stream = b"".join(render([record]) for record in records)
    reader, out = FrameReader(), {b"o": b"", b"e": b""}
    start = 0
    for cut in [*sorted(cut % (len(stream) + 1) for cut in cuts), len(stream)]:
        for kind, payload in reader.feed(stream[start:cut]):
            out[kind] += payload
        start = max(start, cut)
    assert not reader.pending
    return out[b"o"], out[b"e"]


_LINE = st.binary(max_size=40).filter(lambda line: b"\n" not in line)
_TEXT = st.text(max_size=20)


@st.composite
def _runs(draw: st.DrawFn) -> list[EventRecord]:
    ts = draw(st.floats(min_value=1e9, max_value=4e9, allow_nan=False))
    run, job, seq = "run-01HXYZ", "demo", 1
    records = [EventRecord(run, job, RUN_START, ts, {"composition": draw(
        st.sampled_from(["scripts", "steps"])), "warnings": [{"message": draw(_TEXT)}]},
        seq=seq)]
    seq += 1
    for _ in range(draw(st.integers(0, 4))):
        lines = draw(st.lists(_LINE, min_size=1, max_size=4))
        records.append(EventRecord(run, job, STEP_LOG, ts + seq,
                                   {"step": draw(st.sampled_from(["a", "b"])),
                                    "channel": draw(st.sampled_from(["stdout", "stderr"]))},
                                   lines=b"\n".join(lines), n=len(lines), seq=seq))
        seq += len(lines)
    records.append(EventRecord(run, job, STEP_FINISH, ts + seq, {
        "step": "a", "status": "failed", "exit_code": draw(st.integers(0, 255)),
        "error": draw(st.one_of(st.none(), _TEXT)),
        "ratio": draw(st.floats(allow_nan=False, allow_infinity=False))}, seq=seq))
    records.append(EventRecord(run, job, RUN_CANCELED, ts + seq + 1, {
        "reason": draw(_TEXT), "by": "cli"}, seq=seq + 1))
    records.append(EventRecord(run, job, RUN_FINISH, ts + seq + 2, {
        "status": draw(st.sampled_from(["completed", "failed", "canceled"])),
        "error": draw(st.one_of(st.none(), _TEXT))}, seq=seq + 2))
    return records


@settings(max_examples=300, deadline=None)
@given(_runs(), st.booleans(), st.booleans(), st.lists(st.integers(0, 10_000), max_size=6))
def test_a_run_renders_the_same_through_the_server(records: list[EventRecord], as_json: bool,
                                                   color: bool, cuts: list[int]) -> None:
    assert _through_the_wire(records, as_json=as_json, color=color, cuts=cuts) == _render(
        records, as_json=as_json, color=color)


def test_lines_that_are_not_utf8_arrive_as_they_were_written() -> None:
    chunk = EventRecord("r", "j", STEP_LOG, 1.7e9, {"step": "s", "channel": "stdout"},
                        lines=b"plain\ncaf\xe9\nok", n=3, seq=10)
    assert _through_the_wire([chunk], as_json=False, color=False, cuts=[3]) == (
        b"plain\ncaf\xe9\nok\n", b"")


def test_frames_in_any_pieces_and_what_is_not_a_frame() -> None:
    stream = frame(b"o", b"x" * 70_000) + frame(b"r", b"run-1") + frame(b"x", b"0")
    reader = FrameReader()
    got = [item for index in range(0, len(stream), 7) for item in
           reader.feed(stream[index:index + 7])]
    assert got == [(b"o", b"x" * 70_000), (b"r", b"run-1"), (b"x", b"0")]
    with pytest.raises(FrameError, match="unknown frame kind"):
        FrameReader().feed(b"?\0\0\0\0")
    with pytest.raises(FrameError, match="a frame of"):  # never buffers a huge claim
        FrameReader().feed(b"o\xff\xff\xff\xff")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_the_client_json_is_the_json_module(value: object) -> None:
    assert dumps(value) == json.dumps(value)
    assert loads(json.dumps(value)) == value
    assert loads(json.dumps(value, indent=1).encode()) == value


@pytest.mark.parametrize("text", ["", "   ", "{", "[1] 2", '{"a": }', '"\\x"', "\xff",
                                  "nul", "[" * 100_000])
def test_what_is_not_one_json_document_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):  # even where json's own raises RecursionError
        loads(text)
    with pytest.raises((ValueError, RecursionError)):
        json.loads(text)


# -- HTTP/1.1 answers ------------------------------------------------------------


def _feed_bytewise(reader: ResponseReader, data: bytes) -> bytes:
    return b"".join(reader.feed(data[index:index + 1]) for index in range(len(data)))


def test_a_chunked_answer_in_any_pieces() -> None:
    answer = (b"HTTP/1.1 201 \r\ncontent-type: text/event-stream\r\n"
              b"transfer-encoding: chunked\r\nlocation: /runs/x\r\n\r\n"
              b"5\r\nhello\r\n1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\n\r\n")
    whole = ResponseReader()
    assert whole.feed(answer) == b"hello world!" and whole.done
    split = ResponseReader()
    assert _feed_bytewise(split, answer) == b"hello world!" and split.done
    assert (split.status, split.headers["location"]) == (201, "/runs/x")


def test_a_sized_answer_and_one_up_to_the_close() -> None:
    sized = ResponseReader()
    assert sized.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab") == b"ab"
    assert not sized.done and sized.feed(b"c") == b"c" and sized.done
    closing = ResponseReader()
    assert closing.feed(b"HTTP/1.1 200 OK\r\n\r\nall of it") == b"all of it"
    closing.end_of_stream()
    assert closing.done


@pytest.mark.parametrize("answer", [
    b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 abc\r\n\r\n", b"HTTP/1.1 200\r\nno colon\r\n\r\n",
    b"HTTP/1.1 200\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"])
def test_what_is_not_http_is_refused(answer: bytes) -> None:
    with pytest.raises(ProtocolError):
        ResponseReader().feed(answer)


def test_an_answer_cut_short_is_an_error() -> None:
    reader = ResponseReader()
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
    with pytest.raises(ProtocolError):
        reader.end_of_stream()


# -- which command lines go to a server ---------------------------------------------


@pytest.mark.parametrize(("args", "env", "expected"), [
    (["demo", "--name", "x"], {}, Invocation(["demo", "--name", "x"])),
    (["--scripts", "s", "--data-dir=d", "a", "b"], {}, Invocation(["a", "b"], "s", "d")),
    (["--scripts", "one", "--scripts=two", "a"], {}, Invocation(["a"], "two")),
    (["demo"], {"FLWD_LOCAL": "1"}, None),
    (["demo"], {"FLWD_LOCAL": "yes"}, None),
    (["demo"], {"FLWD_LOCAL": "0"}, Invocation(["demo"])),
    (["demo"], {"FLWD_SERVER": "http://x"}, None),
    (["--local", "demo"], {}, None),
    (["--server", "u", "demo"], {}, None),
    (["--debug", "demo"], {}, None),
    (["--token=x", "demo"], {}, None),
    (["--scripts"], {}, None),
    ([":jobs"], {}, Invocation([":jobs"], verb=VerbLine(":jobs"))),
    (["--data-dir", "d", ":logs", "r"], {},
     Invocation([":logs", "r"], None, "d", VerbLine(":logs", ["r"]))),
    ([":jobs"], {"FLWD_LOCAL": "1"}, None),
    ([":jobs", "--help"], {}, None),
    ([":serve"], {}, None),
    (["init", "bash", "x"], {}, None),
    (["completion", "bash"], {}, None),
    (["--help"], {}, None),
    ([], {}, None),
])
def test_which_command_lines_are_handed_over(args: list[str], env: dict[str, str],
                                             expected: Invocation | None) -> None:
    assert job_invocation(args, env) == expected


@pytest.mark.parametrize(("words", "expected"), [
    ([":jobs"], VerbLine(":jobs")),
    ([":jobs", "--json"], VerbLine(":jobs", [], {"--json": [""]})),
    ([":runs", "--job", "a", "--status=failed", "--limit", "5", "--all", "--arg", "n=1",
      "--arg=m=2", "--since", "2026-01-01T00:00:00Z"],
     VerbLine(":runs", [], {"--job": ["a"], "--status": ["failed"], "--limit": ["5"],
                            "--all": [""], "--arg": ["n=1", "m=2"],
                            "--since": ["2026-01-01T00:00:00Z"]})),
    ([":logs", "--follow", "last", "--json"],
     VerbLine(":logs", ["last"], {"--follow": [""], "--json": [""]})),
    ([":cancel", "run-1"], VerbLine(":cancel", ["run-1"])),
    ([":plan", "demo", "--name", "x", "--json"], VerbLine(":plan", ["demo", "--name", "x",
                                                                    "--json"])),
    # cyclopts' to read (and to say what is wrong with): the CLI's process runs them
    ([":plan", "demo", "--help"], None), ([":plan", "demo", "--help=1"], None),
    ([":plan", "demo", "--"], None), ([":plan"], None), ([":plan", "--name"], None),
    ([":runs", "-h"], None), ([":runs", "--version"], None),
    ([":runs", "--status", "bogus"], None), ([":runs", "--limit", "-1"], None),
    ([":runs", "--limit", "x"], None), ([":runs", "--limit", "\u0665"], None),
    ([":runs", "--limit"], None), ([":runs", "--job", "--json"], None),
    ([":runs", "--job="], None), ([":runs", "--json", "--json"], None),
    ([":runs", "--json=false"], None), ([":runs", "extra"], None), ([":runs", "--nope"], None),
    ([":logs"], None), ([":logs", "a", "b"], None), ([":logs", "-x"], None),
    ([":cancel"], None), ([":logs", "last\udcff"], None), ([":logs", "a\x00"], None),
    ([":sources", "list"], None), ([":serve"], None), ([":jobs", "x"], None), ([], None),
])
def test_which_verb_command_lines_a_server_answers(words: list[str],
                                                   expected: VerbLine | None) -> None:
    assert parse_verb(words) == expected


def test_flwd_variables_that_matter_must_match() -> None:
    server = {"FLWD_KV_NAMESPACES": "a,b", "FLWD_GRACE": "10", "PATH": "/bin"}
    same = {"FLWD_KV_NAMESPACES": "a,b"}
    assert differing_variable({**same, "PATH": "/usr/bin"}, server) is None
    # Where the client looked, what flwd sets in a job, and what a run takes from the
    # client itself (planning, grace) need not match.
    assert differing_variable({**same, "FLWD_DATA_DIR": "/d", "FLWD_RUN_ID": "r",
                               "FLWD_LOCAL": "0", "FLWD_PROFILE": "disabled",
                               "FLWD_POLICY_FILE": "/p", "FLWD_GRACE": "1"}, server) is None
    assert differing_variable({}, server) == "FLWD_KV_NAMESPACES"
    assert differing_variable({**same, "FLWD_CONTAINMENT": "keeper"},
                              server) == "FLWD_CONTAINMENT"
    # A variable flwd may read one day is compared too.
    assert differing_variable({**same, "FLWD_SOMETHING_NEW": "1"},
                              server) == "FLWD_SOMETHING_NEW"


# -- which server -------------------------------------------------------------------


def _describe(data_dir: Path, **fields: object) -> None:
    pid = os.getpid()
    owner = {"kind": "serve", "pid": pid, "start": start_time(pid),
             "socket": str(data_dir / "serve.sock"), "protocol": CLIENT_PROTOCOL, **fields}
    data_dir.mkdir(exist_ok=True)
    (data_dir / "serve.json").write_text(json.dumps({k: v for k, v in owner.items()
                                                     if v is not None}))


def test_a_server_is_used_only_when_everything_says_so(tmp_path: Path) -> None:
    data, scripts = tmp_path / "data", tmp_path / "ws" / "scripts"
    scripts.mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "ws")
    assert server_socket(data, scripts) is None  # no description
    _describe(data, scripts_root=str(tmp_path / "link" / "scripts"))
    assert server_socket(data, scripts) == str(data / "serve.sock")
    for other in ({"protocol": CLIENT_PROTOCOL + 1}, {"protocol": None}, {"socket": None},
                  {"kind": "sources"}, {"scripts_root": str(tmp_path)}, {"scripts_root": None},
                  {"start": 1}, {"pid": 2 ** 22 + 1}):
        _describe(data, **{"scripts_root": str(scripts), **other})
        assert server_socket(data, scripts) is None, other


# -- the server's socket ---------------------------------------------------------


def test_the_peer_is_read_from_the_kernel_and_must_be_this_user() -> None:
    mine, theirs = socket.socketpair(socket.AF_UNIX)
    with mine, theirs:
        peer = peer_of(mine)
    assert peer == Peer(os.getpid(), os.geteuid(), os.getegid())
    assert peer_allowed(peer, os.geteuid())
    assert not peer_allowed(Peer(1, os.geteuid() + 1, 0), os.geteuid())
    assert not peer_allowed(Peer(1, 0, 0), 1000)  # root is not the data dir's owner


def test_the_socket_is_made_0600_and_removed_only_if_still_ours(tmp_path: Path) -> None:
    local = bind_local_socket(tmp_path)
    path = tmp_path / "serve.sock"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    path.unlink()
    other = socket.socket(socket.AF_UNIX)
    other.bind(str(path))  # another server's, since
    local.remove()
    assert path.exists()
    other.close()


def test_a_stale_socket_is_replaced_and_a_live_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "serve.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # bound, never listening: what a crashed server leaves
    local = bind_local_socket(tmp_path)
    local.sock.listen()
    try:
        with pytest.raises(ListenFailed, match="another process answers"):
            bind_local_socket(tmp_path)
    finally:
        local.remove()
    assert not path.exists()


@pytest.mark.parametrize("kind", ["symlink", "file"])
def test_what_is_not_our_socket_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "serve.sock"
    if kind == "symlink":
        path.symlink_to(tmp_path / "elsewhere")
    else:
        path.write_text("not a socket")
    with pytest.raises(ListenFailed, match="symbolic link" if kind == "symlink" else
                       "not a socket"):
        bind_local_socket(tmp_path)
    assert path.is_symlink() if kind == "symlink" else path.read_text() == "not a socket"


def test_a_data_dir_too_deep_for_sockaddr_un_still_works(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    assert len(str(deep / "serve.sock")) > 107
    local = bind_local_socket(deep)
    local.sock.listen()
    try:
        from flwd.thin._http import connect

        connect(deep / "serve.sock").close()
    finally:
        local.remove()
    assert socket_address(deep / "serve.sock") == str(deep / "serve.sock")


def test_a_non_blocking_stdout_loses_nothing() -> None:
    # Another process may have made the terminal or pipe non-blocking: the client waits
    # until it takes more (EAGAIN), as a blocking one would, and loses no byte.
    import threading

    from flwd.thin._run import ThinRun

    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    received = bytearray()

    def drain() -> None:
        while chunk := os.read(read_end, 4096):
            received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    data = bytes(range(256)) * 4096  # 1 MiB: many times a pipe's buffer
    client = ThinRun("/nonexistent", ["job"], "/nonexistent")
    try:
        client._write(write_end, data)
    finally:
        os.close(write_end)
        reader.join(timeout=60)
        os.close(read_end)
    assert not client.pipe_broken
    assert bytes(received) == data
