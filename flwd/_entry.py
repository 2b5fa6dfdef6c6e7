"""The ``flwd`` console script (and ``python -m flwd``).

``flwd __complete ...`` runs on every TAB of a shell, so it is dispatched here,
before :mod:`flwd.cli` (and with it the error classes, the job loader and
pydantic) is imported; everything else goes to :func:`flwd.cli.main`.

Ctrl-C may come at any moment, also while Python is still importing flwd: SIGINT is
blocked from the moment this module loads until :func:`main` stands inside the ``try``
that turns a ``KeyboardInterrupt`` into exit status 130, so a press during start-up is
held pending and delivered there instead of unwinding an import with a traceback.
Blocking (not ignoring) keeps the press: the user asked to stop, and flwd stops.
"""

from __future__ import annotations

import os
import signal
import sys

# No thread exists yet, so the main thread's mask is the process's. Every child process
# is started after main() unblocks it (a child inherits the mask it was forked with).
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def main() -> None:
    """Run flwd with ``sys.argv``; exits with its status."""
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        _main(sys.argv[1:])
    except KeyboardInterrupt:
        _exit_quietly(130, "flwd: interrupted\n")
    except SystemExit as exit_:
        code = exit_.code
        _exit_quietly(code if isinstance(code, int) else (0 if code is None else 1), "")


def _exit_quietly(code: int, message: str) -> None:
    # The work is done (or abandoned): a press now must not print a traceback out of the
    # interpreter's teardown. Ignoring is process-wide, unlike a thread's signal mask.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        sys.stderr.write(message)
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        pass
    sys.exit(code)


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
    from flwd.cli import main as cli_main

    cli_main(args)
