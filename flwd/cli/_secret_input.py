"""A job's flags → its binding, reading the secrets the command line points at.

A secret typed on the command line shows in ``ps`` and lands in the shell's history,
so a secret argument may instead say where its value is (parsed, sans-IO, by
:func:`flwd.jobs.parse_job_flags`); this module does the reading:

- ``--NAME-file PATH``: the file's content (a pipe too: ``--api_key-file <(pass show
  api)``), at most :data:`MAX_SECRET_BYTES`, with one trailing newline (``\\n`` or
  ``\\r\\n``) removed, as ``$(cat PATH)`` would;
- ``--NAME -``: standard input, the same way — or, when standard input is a terminal,
  one line typed without echo;
- a *required* secret given nowhere is asked for, without echo, when standard input
  and standard error are terminals (``NAME (secret): ``); elsewhere it stays an error
  that names these forms.

What is read is bound like a typed value (text that is not UTF-8, a NUL: one line
naming the flag, the content never shown). A secret typed on the command line still
works, with a warning. The value only ever lives in the returned binding, which the
rest of flwd keeps out of argv, the environment, events and the Core DB.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Sequence
from typing import Final, TextIO

from flwd.jobs import Arg, Binding, JobFlags, SecretSource, bind_job_flags, parse_job_flags

__all__ = ["MAX_SECRET_BYTES", "argv_secret_warning", "bind_job_command_line",
           "bind_without_input"]

#: The most a secret source may hold: a token, a password or a PEM key fits many
#: times over; anything bigger is surely the wrong file (and is never read whole).
MAX_SECRET_BYTES: Final = 64 * 1024


class _Unreadable(Exception):
    """A source that cannot be read; the message is the phrase after its flag."""


def bind_job_command_line(args: Sequence[Arg], tokens: Sequence[str], *,
                          job_id: str) -> Binding:
    """Parse a job's flags, read its secret sources, ask for missing required secrets on a
    terminal, and bind everything (see the module docstring).

    Blocks while it reads a file, standard input or a prompt; a Ctrl-C at the prompt
    raises :class:`KeyboardInterrupt` (after ending the prompt's line).

    Raises:
        ArgsInvalid: every problem of the flags, the sources and the values at once.
    """
    flags = parse_job_flags(args, tokens, job_id=job_id)
    read: dict[str, str] = {}
    unreadable: dict[str, str] = {}
    for name, source in flags.sources.items():
        try:
            read[name] = _read(source)
        except _Unreadable as exc:
            unreadable[name] = str(exc)
    ask = flags.unanswered(args)
    if ask and _can_prompt():
        # Only worth typing a secret when nothing else is wrong: check the rest first.
        bind_job_flags(args, flags, read, job_id=job_id, unreadable=unreadable,
                       leave_out={arg.name for arg in ask})
        flags = JobFlags({**flags.raw, **{arg.name: [_prompt(arg.name)] for arg in ask}},
                         flags.sources, flags.in_argv)
    binding = bind_job_flags(args, flags, read, job_id=job_id, unreadable=unreadable)
    for name in flags.in_argv:  # said once the command goes on (an error is one line)
        sys.stderr.write(argv_secret_warning(name))
    return binding


def argv_secret_warning(name: str) -> str:
    """The warning line for the secret ``--name`` typed on the command line."""
    return (f"flwd: warning: --{name} on the command line shows in ps and in the shell's "
            f"history; pass it with --{name}-file PATH or --{name} - (stdin)\n")


def bind_without_input(args: Sequence[Arg], tokens: Sequence[str], *, job_id: str,
                       can_prompt: bool) -> tuple[Binding, list[str]] | None:
    """:func:`bind_job_command_line` for a command line whose terminal and files are
    another process's (a server binding the thin client's words): the binding and its
    warning lines, or None when it would read something — a secret source (a file,
    standard input) or a prompt (``can_prompt``: that process's stdin and stderr are
    terminals) — which only that process can do as the command line means it.

    Raises:
        ArgsInvalid: as :func:`bind_job_command_line` (what would not be read is not
        the reason).
    """
    flags = parse_job_flags(args, tokens, job_id=job_id)
    if flags.sources or (can_prompt and flags.unanswered(args)):
        return None
    binding = bind_job_flags(args, flags, {}, job_id=job_id, unreadable={})
    return binding, [argv_secret_warning(name) for name in flags.in_argv]


def _can_prompt() -> bool:
    return _is_terminal(sys.stdin) and _is_terminal(sys.stderr)


def _is_terminal(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (OSError, ValueError):  # closed
        return False


def _prompt(name: str) -> str:
    """One line typed on the terminal without echo (getpass); Ctrl-D is an empty line."""
    try:
        return getpass.getpass(f"{name} (secret): ")
    except EOFError:
        sys.stderr.write("\n")
        return ""
    except KeyboardInterrupt:
        sys.stderr.write("\n")  # the prompt's line is left open: "interrupted" goes below
        raise


def _read(source: SecretSource) -> str:
    """The text of a source, one trailing newline removed; bytes that are not UTF-8 kept
    as ``surrogateescape`` (like argv), for the binding to refuse without showing them."""
    if source.path is None:
        if _is_terminal(sys.stdin):
            return _prompt(source.arg)
        if sys.stdin is None:
            raise _Unreadable("standard input is closed")
        try:
            data = sys.stdin.buffer.read(MAX_SECRET_BYTES + 1)
        except OSError as exc:
            raise _Unreadable(f"cannot read standard input: {_reason(exc)}") from None
        if len(data) > MAX_SECRET_BYTES:
            raise _Unreadable(f"standard input holds more than {_size()}")
        return _text(data)
    path = os.path.expanduser(source.path)
    shown = _shown(source.path)
    if os.path.isdir(path):
        raise _Unreadable(f"{shown} is a directory, not a file")
    try:
        with open(path, "rb") as file:  # a regular file, a pipe, /dev/stdin: all read alike
            data = file.read(MAX_SECRET_BYTES + 1)
    except FileNotFoundError:
        raise _Unreadable(f"no such file {shown}") from None
    except OSError as exc:
        raise _Unreadable(f"cannot read {shown}: {_reason(exc)}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise _Unreadable(f"{shown} is larger than {_size()}; a secret is a token, a "
                          "password or a key")
    return _text(data)


def _text(data: bytes) -> str:
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    return data.decode("utf-8", "surrogateescape")


def _size() -> str:
    return f"{MAX_SECRET_BYTES // 1024} KiB"


def _reason(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


def _shown(path: str) -> str:
    """A path as typed, quoted; bytes that are not UTF-8 and control characters escaped
    (it goes to a terminal)."""
    text = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    text = "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
    return f"'{text}'"
