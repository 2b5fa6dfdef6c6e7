"""The ``flwd`` command (``bin/flwd``, and ``python -m flwd``).

``flwd __complete ...`` runs on every TAB of a shell, so it is dispatched here,
before :mod:`flwd.cli` (and with it the error classes, the job loader and
pydantic) is imported; so is ``flwd JOB ...`` when a local ``flwd :serve`` serves
the workspace (:mod:`flwd.thin` hands it over); everything else goes to
:func:`flwd.cli.main`.

Ctrl-C may come at any moment, also while Python is still importing flwd: SIGINT is
blocked from the moment this module loads until :func:`main` stands inside the ``try``
that turns a ``KeyboardInterrupt`` into exit status 130, so a press during start-up is
held pending and delivered there instead of unwinding an import with a traceback.
Blocking (not ignoring) keeps the press: the user asked to stop, and flwd stops.

Once a command is done, flwd leaves without the interpreter's teardown (see :func:`leave`):
freeing, one by one, every object that trio, pydantic and the engine made at import takes
longer than the run of a small job, and the system reclaims the memory at once.
"""

from __future__ import annotations

# The C module under ``signal`` (which imports ``enum``: ~8 ms of every start, and the
# thin client's start is ~20 ms in all).
import _signal as signal
import atexit
import gc
import os
import sys

TYPE_CHECKING = False  # not typing's: importing typing costs the thin client ~4 ms
if TYPE_CHECKING:
    from typing import NoReturn

#: Set for flwd's own process when not set: looking for pydantic's plugins reads the
#: metadata of every installed package (~30 ms of each start), and flwd uses none. Its jobs
#: do not inherit it (flwd.OWN_ENVIRONMENT).
_OWN_ENVIRONMENT = {"PYDANTIC_DISABLE_PLUGINS": "__all__"}

# No thread exists yet, so the main thread's mask is the process's. Every child process
# is started after main() unblocks it (a child inherits the mask it was forked with).
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def main() -> None:
    """Run flwd with ``sys.argv``; exits with its status."""
    from flwd import OWN_ENVIRONMENT

    for name, value in _OWN_ENVIRONMENT.items():
        if name not in os.environ:
            os.environ[name] = OWN_ENVIRONMENT[name] = value
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        _main(sys.argv[1:])
    except KeyboardInterrupt:
        _exit_quietly(130, "flwd: interrupted\n")
    except SystemExit as exit_:
        code = exit_.code
        _exit_quietly(code if isinstance(code, int) else (0 if code is None else 1), "")


def _exit_quietly(code: int, message: str, *, teardown: bool = True) -> None:
    # The work is done (or abandoned): a press now must not print a traceback out of the
    # interpreter's teardown. Ignoring is process-wide, unlike a thread's signal mask.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        sys.stderr.write(message)
    except OSError:
        pass
    leave(code)


def leave(code: int) -> NoReturn:
    """Exit with ``code`` once what the interpreter's teardown would do that matters is done.

    Everything flwd opened is closed by then (the run's engine closes the Core DB's
    writer, after its last commit, before the command returns). What is left are the
    exit callbacks (logging's handlers flushed and closed, finalizers registered with
    :mod:`weakref`, a coverage measurement saved), run here, and the output buffers,
    flushed. A thread that is not a daemon would be waited for by the interpreter: then
    flwd exits the ordinary way.
    """
    threading = sys.modules.get("threading")
    if threading is not None and any(
            thread.is_alive() and not thread.daemon and thread is not threading.main_thread()
            for thread in threading.enumerate()):
        sys.exit(code)
    atexit._run_exitfuncs()
    codecache = sys.modules.get("flwd._codecache")
    if codecache is not None:
        codecache.save()  # what was imported later (a verb's own modules)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed pipe or stream: what it lost is lost either way
    os._exit(code)


def _main(args: list[str]) -> None:
    if "__complete" in args:
        from flwd.complete._argv import split_globals

        _values, end, _pending = split_globals(args)
        if end < len(args) and args[end] == "__complete":
            from flwd.complete._main import run

            code = run(args[:end], args[end + 1:])
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except OSError:
                pass
            # Skip the interpreter's teardown (freeing the index object by object,
            # finalising modules): on every TAB it is a millisecond or more of nothing.
            os._exit(code)
    if args in ([], ["-h"], ["--help"], ["help"], ["--version"]):
        # Answered before flwd.cli (and pydantic, the jobs' models…) is imported, as it
        # answers them (~200 ms of imports for a line of text).
        from flwd import __version__
        from flwd._usage import USAGE

        try:
            sys.stdout.write(f"flwd {__version__}\n" if args == ["--version"] else USAGE)
            sys.stdout.flush()
        except BrokenPipeError:  # as flwd.cli's: a reader that left, exit 1 quietly
            leave(1)
        leave(0)
    # A job's command line goes to a local server when one serves this workspace: before
    # anything heavy is imported (flwd.thin is stdlib only), so that it is instant.
    from flwd.thin import run as run_thin

    handed = run_thin(args)
    if handed is not None:
        leave(handed)
    # What a command loads (modules, classes, the engine's tables) lives as long as the
    # process: the collector, started a hundred times by those allocations, would walk
    # it all and free next to nothing (a run's imports: ~100 collections, 5% of them).
    # flwd.cli turns it back on once the command's modules are loaded.
    gc.disable()
    # Before the imports whose dataclasses it serves (a third of their time: _codecache).
    from flwd import _codecache

    _codecache.install("serve" if ":serve" in args else "cli")
    from flwd.cli import main as cli_main

    # Saved now, not only at the end: a server runs for weeks and may be killed.
    _codecache.save()
    cli_main(args)
