"""``flwd __complete CURSOR TOKENS...``: the process side of the completion engine.

This is the fast path the shell scripts call on every TAB: it imports only the
standard library's ``os``, ``sys`` and ``marshal`` (plus the C string encoder of
``json``) and this package — never trio, pydantic, yaml, cyclopts or httpx —
reads the cached job index, checks it with ``stat`` calls, and prints NDJSON.
Only a missing or stale index takes the slow path (:mod:`._build`, the real
loaders), and even a failure there still answers: with flwd's own verbs only.
"""

from __future__ import annotations

import os
import sys

from . import _cache
from ._argv import split_globals
from ._locate import data_dir, scripts_root
from ._protocol import encode
from ._resolve import complete

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import TextIO

    from ._index import Index


def run(outer: list[str], argv: list[str], *, env: Mapping[str, str] | None = None,
        cwd: str | None = None, out: TextIO | None = None) -> int:
    """Answer one completion request; the exit status.

    Args:
        outer: the global options given before ``__complete`` (``--scripts X``).
        argv: what follows ``__complete``: the cursor index, then the tokens.
    """
    if not argv:
        return _usage("cursor index argument required")
    try:
        int(argv[0])  # required, but otherwise ignored (reference §14.1)
    except ValueError:
        return _usage(f'invalid cursor index "{argv[0]}"')
    tokens = argv[1:]
    env = os.environ if env is None else env
    given, _end, _pending = split_globals(outer)
    inner, _end, _pending = split_globals(tokens[:-1])
    given.update(inner)  # the completed command's own options win
    if cwd is None:
        try:
            cwd = os.getcwd()
        except OSError:  # the shell sits in a deleted directory
            cwd = os.sep
    root = scripts_root(given.get("--scripts"), env, cwd)
    index = None
    if root is not None:
        index = load_index(root, data_dir(given.get("--data-dir"), env),
                           debug="--debug" in given)
    text = encode(complete(index, tokens))
    stream = out if out is not None else sys.stdout
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError:  # the shell stopped reading: nothing left to say
        pass
    return 0


def load_index(root: str, data: str, *, debug: bool = False) -> Index | None:
    """The fresh index of ``root``: cached, else rebuilt (and cached when possible).

    None when it cannot be built; with ``debug`` the error propagates instead.
    """
    path = _cache.cache_path(data, root)
    index = _cache.load(path, root)
    if index is not None and _cache.is_fresh(index):
        return index
    try:
        from ._build import build_index

        index = build_index(root, data)
    except Exception:
        if debug:
            raise
        return None
    _cache.save(path, index)
    return index


def _usage(message: str) -> int:
    sys.stderr.write(f"flwd: error: {message} (usage: flwd __complete CURSOR [TOKEN...])\n")
    return 2
