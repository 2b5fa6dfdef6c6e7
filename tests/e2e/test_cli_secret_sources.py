"""Secrets that never need argv (issue 12, item 1): ``--NAME-file PATH``, ``--NAME -``
(standard input) and a prompt without echo on a terminal — through the real CLI.

The job counts the bytes of its secret file, so a test sees what the run got without the
value ever being printed. The prompt tests run flwd on a pseudo-terminal that is its
controlling terminal (as a person's shell does), type on it and press Ctrl-C there.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    FLWD,
    Server,
    flwd_env,
    processes_under,
    spawn_on_pty,
    write_job,
)

CONSOLE_FLWD = str(Path(sys.executable).with_name("flwd"))

PYCOUNT = """\
job: {id: pycount, name: Counter, summary: Counts the bytes of a secret}
interpreter: bash
argspec:
  args:
    - {name: api_token, type: string, format: secret, required: true}
    - {name: other_key, type: string, format: secret}
    - {name: fifo, type: string, description: wait for a line from this FIFO}
"""
COUNT = """\
#!/usr/bin/env bash
echo "api_token: $(wc -c < "$ARG_API_TOKEN_FILE") bytes"
if [ -n "${ARG_OTHER_KEY_FILE:-}" ]; then echo "other_key: $(wc -c < "$ARG_OTHER_KEY_FILE") bytes"; fi
if [ -n "${ARG_FIFO:-}" ]; then echo "waiting"; read -r _ < "$ARG_FIFO"; fi
echo done
"""


@pytest.fixture
def ws(workspace: Path) -> Path:
    write_job(workspace, "pycount", PYCOUNT, {"100_main.sh": COUNT})
    return workspace


def flwd(args: list[str], ws: Path, data_dir: Path, *, stdin: bytes = b"",
         **env: str) -> subprocess.CompletedProcess[str]:
    """The real CLI with ``stdin`` as its standard input (a pipe: never a terminal)."""
    done = subprocess.run([*FLWD, *args], cwd=ws, env=flwd_env(data_dir, **env), input=stdin,
                          capture_output=True, timeout=60, check=False)
    return subprocess.CompletedProcess(done.args, done.returncode,
                                       done.stdout.decode(errors="replace"),
                                       done.stderr.decode(errors="replace"))


# -- the file and stdin forms --------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--api_token-file", "--api-token-file"])
def test_a_secret_is_read_from_a_file(ws: Path, data_dir: Path, flag: str) -> None:
    (ws / "token").write_bytes(b"abcdef\n")
    for args in ([flag, "token"], [f"{flag}=token"], [flag, str(ws / "token")]):
        done = flwd(["pycount", *args], ws, data_dir)
        assert done.returncode == 0, done.stderr
        assert "api_token: 6 bytes" in done.stdout
        assert "warning" not in done.stderr and "abcdef" not in done.stdout + done.stderr


@pytest.mark.parametrize(("content", "size"), [
    (b"abc\r\n", 3),          # one trailing newline goes, as $(cat FILE) would take it
    (b"abc\n\n", 4),          # ... exactly one
    (b"abc", 3),
    (b"line one\nline two\n", 17),  # a multi-line secret (a PEM key) keeps its lines
])
def test_one_trailing_newline_is_removed(ws: Path, data_dir: Path, content: bytes,
                                         size: int) -> None:
    (ws / "token").write_bytes(content)
    from_file = flwd(["pycount", "--api_token-file", "token"], ws, data_dir)
    from_stdin = flwd(["pycount", "--api_token", "-"], ws, data_dir, stdin=content)
    for done in (from_file, from_stdin):
        assert done.returncode == 0, done.stderr
        assert f"api_token: {size} bytes" in done.stdout


def test_a_secret_is_read_from_standard_input(ws: Path, data_dir: Path) -> None:
    for args in (["--api_token", "-"], ["--api_token=-"], ["--api_token-file", "-"]):
        done = flwd(["pycount", *args], ws, data_dir, stdin=b"xyz-secret\n")
        assert done.returncode == 0, done.stderr
        assert "api_token: 10 bytes" in done.stdout
        assert "warning" not in done.stderr


def test_a_file_and_stdin_together(ws: Path, data_dir: Path) -> None:
    (ws / "token").write_text("abcdef\n")
    done = flwd(["pycount", "--api_token-file", "token", "--other-key", "-"], ws, data_dir,
                stdin=b"12345678")
    assert done.returncode == 0, done.stderr
    assert "api_token: 6 bytes" in done.stdout and "other_key: 8 bytes" in done.stdout


def test_only_one_secret_may_read_standard_input(ws: Path, data_dir: Path) -> None:
    done = flwd(["pycount", "--api_token", "-", "--other_key", "-"], ws, data_dir,
                stdin=b"abcdef\n")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "flwd: error: invalid arguments for job pycount: --other_key -: standard input is "
        "read by --api_token - already; pass --other_key-file PATH (run 'flwd pycount "
        "--help' for its flags)"]


@pytest.mark.parametrize(("make", "message"), [
    (lambda ws: None, "--api_token-file: no such file 'token'"),
    (lambda ws: (ws / "token").mkdir(), "--api_token-file: 'token' is a directory, not a file"),
    (lambda ws: (ws / "token").write_bytes(b"SECRET-CONTENT " * 5000),
     "--api_token-file: 'token' is larger than 64 KiB; a secret is a token, a password or a "
     "key"),
    (lambda ws: (ws / "token").write_bytes(b"SECRET-CONTENT caf\xe9\n"),
     "--api_token-file: is not valid UTF-8; pass the text in UTF-8"),
    (lambda ws: (ws / "token").write_bytes(b"SECRET-CONTENT\x00\n"),
     "--api_token-file: contains a NUL character (U+0000), which no process argument, "
     "environment variable or file can carry"),
    (lambda ws: (ws / "token").write_bytes(b"\n"), "--api_token-file: required; must not be "
                                                   "empty"),
])
def test_a_file_that_cannot_be_used_is_one_line_that_never_shows_it(
        ws: Path, data_dir: Path, make: Any, message: str) -> None:
    make(ws)
    done = flwd(["pycount", "--api_token-file", "token"], ws, data_dir)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"flwd: error: invalid arguments for job pycount: {message} (run 'flwd pycount "
        "--help' for its flags)"]
    assert "SECRET-CONTENT" not in done.stdout + done.stderr
    assert not (data_dir / "flwd.db").exists() or "pycount" not in _runs(ws, data_dir)


def test_too_much_on_standard_input_is_refused(ws: Path, data_dir: Path) -> None:
    done = flwd(["pycount", "--api_token", "-"], ws, data_dir, stdin=b"x" * (64 * 1024 + 1))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "flwd: error: invalid arguments for job pycount: --api_token (stdin): standard input "
        "holds more than 64 KiB (run 'flwd pycount --help' for its flags)"]


def test_an_unreadable_file_is_named(ws: Path, data_dir: Path) -> None:
    token = ws / "token"
    token.write_text("abcdef")
    done = flwd(["pycount", "--api_token-file", "token/x"], ws, data_dir)
    assert done.returncode == 2
    assert "--api_token-file: cannot read 'token/x': not a directory" in done.stderr
    if os.geteuid() != 0:  # root reads any file
        token.chmod(0)
        done = flwd(["pycount", "--api_token-file", "token"], ws, data_dir)
        assert done.returncode == 2
        assert "--api_token-file: cannot read 'token': permission denied" in done.stderr


def test_flag_problems_of_the_file_form(ws: Path, data_dir: Path) -> None:
    (ws / "token").write_text("abcdef")
    cases = {
        ("--api_token-file",): "--api_token-file: needs a file path",
        ("--api_token-file=",): "--api_token-file: needs a file path",
        ("--api_token-file", "token", "--api_token", "x"): "--api_token: given more than once",
        ("--api_token-fil", "token"): "--api_token-fil: unknown flag (did you mean "
                                      "'--api_token-file'?)",
    }
    for args, message in cases.items():
        done = flwd(["pycount", *args], ws, data_dir)
        assert done.returncode == 2, args
        assert message in done.stderr.splitlines()[0], (args, done.stderr)


def test_a_missing_required_secret_without_a_terminal_names_the_forms(ws: Path,
                                                                     data_dir: Path) -> None:
    done = flwd(["pycount"], ws, data_dir)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "flwd: error: invalid arguments for job pycount: --api_token: required; pass "
        "--api_token-file PATH or --api_token - (stdin) (run 'flwd pycount --help' for its "
        "flags)"]


def test_a_secret_typed_on_the_command_line_works_with_a_warning(ws: Path,
                                                                 data_dir: Path) -> None:
    done = flwd(["pycount", "--api_token", "abcdef"], ws, data_dir)
    assert done.returncode == 0, done.stderr
    assert "api_token: 6 bytes" in done.stdout
    assert done.stderr.splitlines() == [
        "flwd: warning: --api_token on the command line shows in ps and in the shell's "
        "history; pass it with --api_token-file PATH or --api_token - (stdin)"]


def test_help_and_completion_show_the_forms(ws: Path, data_dir: Path) -> None:
    done = flwd(["pycount", "--help"], ws, data_dir)
    assert done.returncode == 0, done.stderr
    rows = [" ".join(line.split()) for line in done.stdout.splitlines()]
    assert "--api_token VALUE string, required, secret" in rows
    assert "--api_token-file PATH --api_token read from the file PATH" in rows
    assert "--api_token - --api_token read from standard input" in rows
    assert "--other_key-file PATH --other_key read from the file PATH" in rows
    assert "pass it with --NAME-file PATH or --NAME - (stdin). A missing required secret" in rows

    flags = flwd(["__complete", "2", "pycount", "--api"], ws, data_dir)
    assert [json.loads(line)["insert"] for line in flags.stdout.splitlines()] == [
        "--api_token", "--api_token-file"]
    path = flwd(["__complete", "3", "pycount", "--api-token-file", "to"], ws, data_dir)
    assert [json.loads(line) for line in path.stdout.splitlines()] == [
        {"insert": "to", "display": "a file path", "type": "file"}]


# -- nothing of it anywhere ----------------------------------------------------------------


def _runs(ws: Path, data_dir: Path) -> str:
    return flwd([":runs", "--json"], ws, data_dir).stdout


def _read_proc(pid: int, name: str) -> bytes:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as file:
            return file.read()
    except OSError:
        return b""


def _wait_for_line(process: subprocess.Popen[bytes], needle: bytes, seen: list[bytes],
                   timeout: float = 60) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"flwd ended before {needle!r}: {b''.join(seen)!r}")
        seen.append(line)
        if needle in line:
            return
    raise AssertionError(f"{needle!r} never showed: {b''.join(seen)!r}")


def test_a_secret_from_a_file_is_in_no_argv_environment_event_or_file(ws: Path,
                                                                       data_dir: Path) -> None:
    secret = "fifo-secret-7f3a9c41"
    (ws / "token").write_text(secret + "\n")
    fifo = ws / "gate"
    os.mkfifo(fifo)
    process = subprocess.Popen(
        [*FLWD, "pycount", "--api_token-file", "token", "--fifo", str(fifo), "--json"],
        cwd=ws, env=flwd_env(data_dir), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    seen: list[bytes] = []
    try:
        _wait_for_line(process, b"waiting", seen)  # the job now blocks on the FIFO
        cmdline = _read_proc(process.pid, "cmdline")
        assert b"--api_token-file\0token" in cmdline  # the flwd process, as ps shows it
        job = processes_under(f"FLWD_RUN_DIR={data_dir}")
        assert job, "the job's processes are not to be found"
        for pid in [process.pid, *job]:
            for name in ("cmdline", "environ"):
                assert secret.encode() not in _read_proc(pid, name), (pid, name)
        with open(fifo, "w") as gate:
            gate.write("go\n")
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    events = b"".join(seen) + out
    assert b'"api_token: 20 bytes"' in events
    assert secret.encode() not in events + err
    for path in data_dir.rglob("*"):  # the Core DB, its WAL, the run directory
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert secret not in _runs(ws, data_dir)


# -- a terminal ----------------------------------------------------------------------------




def _read_until(master: int, pattern: re.Pattern[bytes], seen: bytearray,
                timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not pattern.search(seen):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{pattern.pattern!r} never showed: {bytes(seen[-2000:])!r}")
        ready, _, _ = select.select([master], [], [], left)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            if not chunk:
                raise AssertionError(f"flwd ended before {pattern.pattern!r}: {bytes(seen)!r}")
            seen += chunk


def _finish(pid: int, master: int, seen: bytearray, timeout: float = 60) -> int:
    """Read the terminal until flwd closes it; its exit status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], deadline - time.monotonic())
        if not ready:
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            break
        seen += chunk
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(master)
    return os.waitstatus_to_exitcode(status)


PROMPT = re.compile(rb"api_token \(secret\): ")


def test_a_missing_required_secret_is_asked_for_without_echo(ws: Path,
                                                             data_dir: Path) -> None:
    pid, master = spawn_on_pty([CONSOLE_FLWD, "pycount"], flwd_env(data_dir), ws)
    seen = bytearray()
    try:
        _read_until(master, PROMPT, seen)
        os.write(master, b"typed-secret-42\n")
    finally:
        code = _finish(pid, master, seen)
    output = bytes(seen).decode(errors="replace")
    assert code == 0, output
    assert output.count("api_token (secret): ") == 1
    assert "api_token: 15 bytes" in output
    assert "typed-secret" not in output  # not echoed, not printed
    assert "warning" not in output


def test_stdin_on_a_terminal_reads_one_line_without_echo(ws: Path, data_dir: Path) -> None:
    pid, master = spawn_on_pty([CONSOLE_FLWD, "pycount", "--api_token", "-"],
                                flwd_env(data_dir), ws)
    seen = bytearray()
    try:
        _read_until(master, PROMPT, seen)
        os.write(master, b"abc\n")
    finally:
        code = _finish(pid, master, seen)
    output = bytes(seen).decode(errors="replace")
    assert code == 0 and "api_token: 3 bytes" in output, output
    assert "abc" not in output.replace("api_token", "")


def test_nothing_is_asked_when_something_else_is_wrong(ws: Path, data_dir: Path) -> None:
    pid, master = spawn_on_pty([CONSOLE_FLWD, "pycount", "--bogus"], flwd_env(data_dir), ws)
    seen = bytearray()
    code = _finish(pid, master, seen)
    output = bytes(seen).decode(errors="replace")
    assert code == 2, output
    assert "(secret)" not in output and "--bogus: unknown flag" in output


def test_ctrl_c_at_the_prompt_exits_130_without_a_traceback(ws: Path, data_dir: Path) -> None:
    pid, master = spawn_on_pty([CONSOLE_FLWD, "pycount"], flwd_env(data_dir), ws)
    seen = bytearray()
    try:
        _read_until(master, PROMPT, seen)
        os.write(master, b"half-typ\x03")
    finally:
        code = _finish(pid, master, seen)
    output = bytes(seen).decode(errors="replace")
    assert code == 130, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
    assert output.rstrip().endswith("flwd: interrupted")
    assert "half-typ" not in output


# -- remote mode ---------------------------------------------------------------------------


def test_remote_mode_reads_the_file_here_and_sends_it_in_the_body(
        ws: Path, data_dir: Path, dev_server: Server, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "token").write_text("abcdef\n")
    remote = {"FLWD_SERVER": dev_server.url, "FLWD_TOKEN": "dev-token"}
    for args in (["--api_token-file", "token"], ["--api-token-file=token"]):
        done = flwd(["pycount", *args], elsewhere, data_dir, **remote)
        assert done.returncode == 0, done.stderr
        assert "api_token: 6 bytes" in done.stdout and "warning" not in done.stderr
    piped = flwd(["pycount", "--api_token", "-"], elsewhere, data_dir, stdin=b"1234567\n",
                 **remote)
    assert piped.returncode == 0 and "api_token: 7 bytes" in piped.stdout, piped.stderr
    plan = flwd([":plan", "pycount", "--api_token-file", "token"], elsewhere, data_dir,
                **remote)
    assert plan.returncode == 0 and "[secret]" in plan.stdout, plan.stderr
    missing = flwd(["pycount", "--api_token-file", "nope"], elsewhere, data_dir, **remote)
    assert missing.returncode == 2
    assert "--api_token-file: no such file 'nope'" in missing.stderr
    assert "abcdef" not in "".join(dev_server.log)


def test_remote_mode_asks_on_a_terminal_too(ws: Path, data_dir: Path,
                                            dev_server: Server, tmp_path: Path) -> None:
    env = flwd_env(data_dir, FLWD_SERVER=dev_server.url, FLWD_TOKEN="dev-token")
    pid, master = spawn_on_pty([CONSOLE_FLWD, "pycount"], env, tmp_path)
    seen = bytearray()
    try:
        _read_until(master, PROMPT, seen)
        os.write(master, b"typed-secret-42\n")
    finally:
        code = _finish(pid, master, seen)
    output = bytes(seen).decode(errors="replace")
    assert code == 0 and "api_token: 15 bytes" in output, output
    assert "typed-secret" not in output

    pid, master = spawn_on_pty([CONSOLE_FLWD, "pycount"], env, tmp_path)
    seen = bytearray()
    try:
        _read_until(master, PROMPT, seen)
        os.write(master, b"\x03")
    finally:
        code = _finish(pid, master, seen)
    output = bytes(seen).decode(errors="replace")
    assert code == 130, output
    assert "Traceback" not in output and output.rstrip().endswith("flwd: interrupted")
