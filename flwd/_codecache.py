"""A cache of the code :mod:`dataclasses` compiles, kept from one flwd process to the next.

Each ``@dataclass`` builds the text of its ``__init__``,
``__repr__``, ``__eq__``… and compiles it with ``exec`` when its module is imported, one
function at a time: a ``flwd JOB`` run imports ~150 dataclasses (flwd's, pydantic's,
annotated_types') and compiled ~800 such functions, a third of its start-up (~120 ms of
~290 ms of imports on a 2-core VM). A ``.pyc`` holds no such code, so every start
compiled it again.

:func:`install` gives ``dataclasses`` an ``exec`` of its own (a
module global, found before the builtin) that runs a text compiled by an earlier process
from its stored code object: the same text gives the same code (compiled with no
inherited ``__future__`` flags, as ``dataclasses``' own call does), and the function is
made from it exactly as before, in the caller's globals. The text is the key, so nothing
stale can be used: a changed class makes another text, a miss. (Python 3.13 builds a
class's methods from one text; that is cached the same way.) ``typing`` gets a
``compile`` the same way: it compiles each string annotation pydantic resolves (~200 per
run, ~8 ms). :func:`save` writes what
this process compiled, if anything, beside what it loaded.

The file is ``$XDG_CACHE_HOME/flwd/dataclasses-<python>.bin`` (``~/.cache/flwd``), written
whole (a temporary file, then renamed) and read only when this user owns it and nobody
else may write it: it holds code that flwd executes. Anything wrong with it (absent,
corrupt, another Python's, unreadable, a folder that cannot be made) means a compile, as
without it; ``FLWD_CODE_CACHE=0`` turns it off.

This module imports only what ``dataclasses`` itself does (it runs before flwd.cli).
"""

from __future__ import annotations

import marshal
import os
import sys
from types import CodeType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: A cache past this many texts is started again (a flwd install compiles ~1,000).
MAX_ENTRIES = 20_000
#: A larger file is not read (flwd's own is ~1 MB): not worth its time, nor its memory.
MAX_BYTES = 32 * 1024 * 1024
#: Written into the file: marshalled code is only read by the Python that wrote it.
_VERSION = f"flwd-dataclasses-1 {sys.version} {sys.implementation.cache_tag}"

_loaded: dict[str, bytes] = {}
_added: dict[str, bytes] = {}
_path: str | None = None


def install() -> bool:
    """Serve ``dataclasses``' (and ``typing``'s) compiles from the cache; True when it is
    in place.

    Call it before the modules whose dataclasses are to be cached are imported.
    """
    global _path
    import dataclasses
    import typing

    # dataclasses calls ``exec`` by its global name: a global of the module named so is
    # found before the builtin, and every text it compiles comes through _exec. typing
    # compiles each string annotation (a ForwardRef) pydantic resolves: ``compile``.
    if ("exec" in vars(dataclasses) or "compile" in vars(typing)
            or os.environ.get("FLWD_CODE_CACHE") == "0"):
        return False
    _path = _cache_path()
    if _path is None:
        return False
    _loaded.update(_read(_path))
    dataclasses.exec = _exec  # type: ignore[attr-defined]
    typing.compile = _compile  # type: ignore[attr-defined]
    return True


def save() -> None:
    """Write the cache if this process compiled something it did not hold (blocking; a
    failure is silent: the next process compiles again)."""
    if not _added or _path is None:
        return
    entries = {} if len(_loaded) + len(_added) > MAX_ENTRIES else dict(_loaded)
    entries.update(_added)
    folder = os.path.dirname(_path)
    temporary = f"{_path}.{os.getpid()}.tmp"
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(temporary, flags, 0o600)
        except FileExistsError:  # left by a process of this pid that died: never followed
            os.unlink(temporary)
            fd = os.open(temporary, flags, 0o600)
        try:
            with os.fdopen(fd, "wb") as file:
                marshal.dump((_VERSION, entries), file)
        except BaseException:
            os.unlink(temporary)
            raise
        os.replace(temporary, _path)
    except OSError:
        return
    _loaded.update(_added)
    _added.clear()


def close() -> None:
    """:func:`save`, then compile as without the cache and let its memory go (~1.4 MB):
    for a process that runs long after its imports (a server)."""
    global _path
    import dataclasses
    import typing

    save()
    if vars(dataclasses).get("exec") is _exec:
        del dataclasses.exec  # type: ignore[attr-defined]
    if vars(typing).get("compile") is _compile:
        del typing.compile  # type: ignore[attr-defined]
    _path = None
    _loaded.clear()
    _added.clear()


def _cache_path() -> str | None:
    base = os.environ.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):  # the spec: a relative value is to be ignored
        home = os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    tag = sys.implementation.cache_tag or "python"
    return os.path.join(base, "flwd", f"dataclasses-{tag}.bin")


def _read(path: str) -> dict[str, bytes]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return {}
    try:
        status = os.fstat(fd)
        # Code this process will run: only from a file of this user that nobody else
        # may change.
        if (status.st_uid != os.geteuid() or status.st_mode & 0o022
                or status.st_size > MAX_BYTES):
            return {}
        with os.fdopen(fd, "rb", closefd=False) as file:
            version, entries = marshal.load(file)
    except (OSError, ValueError, EOFError, TypeError):
        return {}
    finally:
        os.close(fd)
    if version != _VERSION or not isinstance(entries, dict):
        return {}
    return entries


def _exec(source: str | bytes | CodeType, globals: dict[str, Any] | None = None,
          locals: dict[str, Any] | None = None, /) -> None:
    """``exec`` as ``dataclasses`` calls it, with the compiled code of a text kept."""
    exec(_code(source, source, "<string>", "exec") if isinstance(source, str) else source,
         globals, locals)


def _compile(source: Any, filename: Any, mode: str, flags: int = 0,
             dont_inherit: bool = False, optimize: int = -1) -> Any:
    """``compile`` as ``typing`` calls it, with the code of a text kept."""
    if isinstance(source, str) and isinstance(filename, str) and not flags and optimize == -1:
        return _code(f"\0{mode}\0{filename}\0{source}", source, filename, mode)
    return compile(source, filename, mode, flags, dont_inherit=True, optimize=optimize)


def _code(key: str, source: str, filename: str, mode: str) -> CodeType:
    stored = _loaded.get(key) or _added.get(key)
    if stored is not None:
        try:
            code = marshal.loads(stored)
        except (ValueError, EOFError, TypeError):
            code = None
        if isinstance(code, CodeType):
            return code
    # As the builtin compiles a text for ``dataclasses`` and ``typing``, which have no
    # __future__ import (this module's ``annotations`` must not leak into their code).
    code = compile(source, filename, mode, dont_inherit=True)
    _added[key] = marshal.dumps(code)
    return code
