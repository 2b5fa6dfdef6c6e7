"""flwd's command line: ``main()`` routes verbs to cyclopts and jobs to the job runner.

Errors are one line on stderr (the field and the fix), never a traceback
unless ``--debug``. Exit statuses: 0 ok, 1 job failed, 2 usage or validation
error, 130 cancelled by Ctrl-C.
"""

from __future__ import annotations

import errno
import gc
import sys
from collections.abc import Sequence
from typing import Any

from flwd import __version__
from flwd._usage import USAGE
from flwd.errors import CODES_IN_CLI_LINE, FlwdError, UsageError
from flwd.jobs import printable, text_problem

from ._context import CONTEXT

_VERBS = ("init", "help")


def _split_globals(args: list[str]) -> list[str]:
    """Consume the global options in front of the command; return the rest."""
    index = 0
    while index < len(args):
        token = args[index]
        name, eq, value = token.partition("=")
        if name == "--db":
            CONTEXT.db = _db_option(args, index, value if eq else None)
            index += 0 if eq else 1
        elif name in ("--scripts", "--data-dir", "--server"):
            what = "a URL" if name == "--server" else "a directory"
            if not eq:
                if index + 1 >= len(args):
                    raise_usage(f"{name} needs {what}")
                value = args[index + 1]
                index += 1
            if name == "--scripts":
                CONTEXT.scripts = value
            elif name == "--data-dir":
                CONTEXT.data_dir = value
            else:
                if not value.strip():
                    raise_usage("--server needs a URL")
                CONTEXT.server = value
        elif name == "--token":
            # A token in argv would show in `ps` and in shell history.
            raise UsageError("--token is not accepted on the command line",
                             hint="set the token in the FLWD_TOKEN environment variable")
        elif token == "--debug":
            CONTEXT.debug = True
        elif token == "--local":
            pass  # this process does the work: flwd._entry read it, and did not hand it over
        else:
            break
        index += 1
    return args[index:]


def _db_option(args: list[str], index: int, value: str | None) -> str:
    """The value of ``--db`` at ``args[index]`` (``value``: given as ``--db=VALUE``).

    Raises:
        UsageError: no value, or one holding a password (``ps`` would show it).
    """
    if value is None:
        if index + 1 >= len(args):
            raise_usage("--db needs a URL (postgresql://USER@HOST/DATABASE) or a SQLite file")
        value = args[index + 1]
    if not value.strip():
        raise_usage("--db needs a URL (postgresql://USER@HOST/DATABASE) or a SQLite file")
    from flwd.store import names_a_password  # start-up: only when --db is given

    if names_a_password(value):
        # A password in argv would show in `ps` and in shell history (as a token would).
        raise UsageError("--db: a password is not accepted on the command line",
                         hint="put it in PGPASSWORD or ~/.pgpass, or the whole URL in FLWD_DB")
    return value


def _verb_db_option(args: list[str]) -> list[str]:
    """``flwd :VERB … --db URL …``: ``--db`` after a verb is the global option (up to a
    ``--``). Not for ``:plan``, whose words after the job are the job's own flags."""
    if args[0] == ":plan":
        return args
    rest = [args[0]]
    index = 1
    while index < len(args):
        name, eq, value = args[index].partition("=")
        if args[index] == "--":
            return rest + args[index:]
        if name == "--db":
            CONTEXT.db = _db_option(args, index, value if eq else None)
            index += 1 if eq else 2
            continue
        rest.append(args[index])
        index += 1
    return rest


def raise_usage(message: str) -> None:
    raise UsageError(message, hint="see 'flwd --help'")


def _dispatch(args: list[str]) -> int:
    args = _split_globals(args)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0
    if args[0] == "--version":
        print(f"flwd {__version__}")
        return 0
    # The imports below are where they are used, to keep start-up fast: each command
    # loads only what it needs (cyclopts for the verbs, trio and the engine for a run).
    if args[0] == "__complete":  # normally dispatched earlier, by flwd._entry
        from flwd.complete import run as run_complete

        return run_complete(_global_args(), args[1:])
    if args[0] == "completion":
        _refuse_bad_text(args)
        return _completion(args[1:])
    if args[0].startswith(":") or args[0] in _VERBS:
        _refuse_bad_text(args)
        gc.enable()  # disabled for the start-up by flwd._entry; a verb may run for days
        return _run_cyclopts(_verb_db_option(args))
    if args[0].startswith("-"):
        raise_usage(f"unknown option {args[0]}")
    if CONTEXT.runs_here():
        # The keeper of the run's host steps boots (on the other core) while the engine
        # loads: it is a Python process the first step would otherwise wait for.
        from flwd._keeper_boot import prelaunch_keeper

        prelaunch_keeper()
    from ._run import run_job_command

    return run_job_command(args)


def _refuse_bad_text(args: list[str]) -> None:
    """A verb's words that are not text (bytes that are not UTF-8, NUL) are one usage line.

    A job's flags are checked by its binding, which names the flag; here a run id, a
    source name or a job filter would otherwise reach an encoder deep inside and end as
    an internal error.
    """
    for word in args:
        problem = text_problem(word, argv=True)
        if problem is not None:
            raise UsageError(f"{args[0]}: the argument '{printable(word, argv=True)}' {problem}",
                             hint="see 'flwd --help'")


def _global_args() -> list[str]:
    """The global options already consumed, as words (for ``__complete``)."""
    words = []
    for name, value in (("--scripts", CONTEXT.scripts), ("--data-dir", CONTEXT.data_dir)):
        if value is not None:
            words += [name, value]
    return words + (["--debug"] if CONTEXT.debug else [])


def _completion(args: list[str]) -> int:
    """``flwd completion SHELL``: print the shell's completion script."""
    from flwd.complete import SHELLS, UnknownShell, completion_script  # start-up: only here

    choices = ", ".join(SHELLS)
    if len(args) != 1:
        raise UsageError("flwd completion needs one shell", hint=f"choose one of: {choices}")
    try:
        sys.stdout.write(completion_script(args[0]))
    except UnknownShell:
        raise UsageError(f"unknown shell '{args[0]}'", hint=f"choose one of: {choices}") from None
    return 0


def _run_cyclopts(args: list[str]) -> int:
    # cyclopts and the verbs are imported by the verbs only (start-up of a job's run).
    from cyclopts import CycloptsError, UnknownCommandError

    from ._app import app

    try:
        result = app(args, exit_on_error=False, print_error=False)
    except UnknownCommandError as exc:
        sys.stderr.write(f"flwd: error: {_unknown_command(exc, app)}\n")
        return 2
    except CycloptsError as exc:
        message = " ".join(line.strip() for line in str(exc).strip().splitlines())
        sys.stderr.write(f"flwd: error: {_missing_argument(message)}\n")
        return 2
    return result if isinstance(result, int) else 0


def _missing_argument(message: str) -> str:
    """cyclopts' 'Command ":logs" parameter RUN requires an argument.' in flwd's words."""
    import re  # start-up: only on an error

    match = re.fullmatch(r'Command "(?P<verb>[^"]+)" parameter (?P<what>\S+) requires an '
                         r"argument\.", message)
    if match is None:
        return message
    verb, what = match["verb"], match["what"]
    return f"{verb} needs {what} (see 'flwd {verb} --help')"


def _unknown_command(exc: object, root: object) -> str:
    """``unknown command 'X'``, a close match, and every command there is (never cut short)."""
    import difflib  # start-up: only on an error

    parent: Any = getattr(exc, "app", None) or root
    token = (getattr(exc, "unused_tokens", None) or ["?"])[0]
    names = [name for name in parent if not name.startswith("-") and parent[name].show]
    if parent is root:
        names.append("completion")  # dispatched before cyclopts (see _dispatch)
    where = "" if parent is root else f"{parent.name[0]} "
    text = f"unknown command '{where}{token}'"
    close = difflib.get_close_matches(token, names, n=1, cutoff=0.6)
    if close:
        text += f" (did you mean '{where}{close[0]}'?)"
    return text + f"; commands: {', '.join(where + name for name in names)}"


def _sole_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error a chain of one-member groups wraps (trio's nurseries add them),
    else the group itself."""
    inner: BaseException = group
    while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
        inner = inner.exceptions[0]
    return inner


def _os_error_line(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    line = reason[:1].lower() + reason[1:]
    if exc.filename is not None:
        line += f": {exc.filename}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        line += " (check its permissions, and the user flwd runs as)"
    return line


def error_report(exc: FlwdError) -> tuple[str, int]:
    """What the CLI says of ``exc`` on stderr (its lines), and its exit status."""
    named = f"{exc.problem.code}: " if exc.problem.code in CODES_IN_CLI_LINE else ""
    text = f"flwd: error: {named}{exc.one_line()}\n"
    text += "".join(f"  {line}\n" for line in exc.field_lines())
    return text, exc.problem.exit_status


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (``flwd``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            code = _dispatch(args)
        except BaseExceptionGroup as group:
            # An error raised in a nursery is reported as itself, not as "ExceptionGroup".
            sole = _sole_error(group)
            if sole is group:
                raise
            raise sole from None
    except FlwdError as exc:
        text, code = error_report(exc)
        sys.stderr.write(text)
    except KeyboardInterrupt:
        sys.stderr.write("flwd: interrupted\n")
        code = 130
    except BrokenPipeError:
        code = 1
    except OSError as exc:
        # The system refused something (a permission, a path, a full disk): one line
        # naming it, exit 1 — an error of the environment, not one to report.
        if CONTEXT.debug:
            raise
        sys.stderr.write(f"flwd: error: {_os_error_line(exc)}\n")
        code = 1
    except Exception as exc:  # the last line of defence: one line, unless --debug
        if CONTEXT.debug:
            raise
        sys.stderr.write(f"flwd: internal error: {type(exc).__name__}: {exc}\n"
                         "  rerun with --debug for the traceback, and report it\n")
        code = 1
    sys.exit(code)
