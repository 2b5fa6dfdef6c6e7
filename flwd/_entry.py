"""The ``flwd`` console script (and ``python -m flwd``).

``flwd __complete ...`` runs on every TAB of a shell, so it is dispatched here,
before :mod:`flwd.cli` (and with it the error classes, the job loader and
pydantic) is imported; everything else goes to :func:`flwd.cli.main`.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    """Run flwd with ``sys.argv``; exits with its status."""
    args = sys.argv[1:]
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

    cli_main()
