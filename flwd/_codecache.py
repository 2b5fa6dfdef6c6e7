"""A cache of the code that classes compile as they are made, kept from one flwd process
to the next.

A ``.pyc`` holds a module's code, not the code its classes generate when it runs: each
``@dataclass`` writes the text of its ``__init__``, ``__repr__``, ``__eq__``… and compiles
it with ``exec``, one function at a time; each ``attrs`` class (trio's) does the same with
``compile``; ``typing`` compiles each string annotation pydantic resolves. A ``flwd JOB``
run compiled ~1,100 such texts at every start (~800 of ~150 dataclasses; ~50 of trio's
attrs classes, ~25 ms; ~200 annotations, ~8 ms): over a third of its imports' time on a
2-core VM.

:func:`install` gives each of those modules a global of the builtin's name (found before
the builtin) that takes a text compiled by an earlier process from its stored code object.
It compiles as the module's own call does: with the module's ``__future__`` flags (attrs'
module has ``annotations``), never this module's. The key is the text with its file name,
mode and flags, so nothing stale can be used: a changed class makes another text, a miss;
the code is then the builtin's own, and the function is made from it exactly as before,
in the caller's globals. :func:`save` writes what this process compiled, if anything,
beside what it loaded; :func:`close` lets it all go (a server, once its imports are done).

The file is ``$XDG_CACHE_HOME/flwd/code-<kind>-<python>.bin`` (``~/.cache/flwd``; a
server's kind is ``serve``, every other command's ``cli``), written whole
(a temporary file, then renamed) and read only when this user owns it and nobody else may
write it: it holds code that flwd executes. Anything wrong with it (absent, corrupt,
another Python's, unreadable, a folder that cannot be made) means a compile, as without
it; ``FLWD_CODE_CACHE=0`` turns it off.
"""

from __future__ import annotations

import marshal
import os
import sys
from types import CodeType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: A cache past this many texts is started again (a flwd install compiles ~1,100).
MAX_ENTRIES = 20_000
#: A larger file is not read (flwd's own is ~1 MB): not worth its time, nor its memory.
MAX_BYTES = 32 * 1024 * 1024
#: Written into the file: marshalled code is only read by the Python that wrote it.
_VERSION = f"flwd-code-2 {sys.version} {sys.implementation.cache_tag}"
#: The modules that compile code as they make classes, and the builtin each calls by its
#: global name: a global of the module named so is found before the builtin.
_SERVED = (("dataclasses", "exec"), ("typing", "compile"), ("attr._make", "compile"))

_loaded: dict[str, bytes] = {}
_added: dict[str, bytes] = {}
_path: str | None = None


def install(kind: str = "cli") -> bool:
    """Serve the compiles of ``dataclasses``, ``typing`` and ``attrs`` from the cache; True
    when it is in place.

    ``kind`` names the cache file: what a kind of process imports (a server's HTTP stack
    doubles the file, and each run would read it all). Call it before the modules whose
    classes are to be cached are imported.
    """
    global _path
    if os.environ.get("FLWD_CODE_CACHE") == "0" or _path is not None:
        return False
    modules = _modules()
    if not modules:
        return False
    _path = _cache_path(kind)
    if _path is None:
        return False
    _loaded.update(_read(_path))
    for module, name in modules:
        flags = _future_flags(vars(module))
        setattr(module, name, _exec_for(flags) if name == "exec" else _compile_for(flags))
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
    save()
    for module_name, name in _SERVED:
        module = sys.modules.get(module_name)
        if module is not None and getattr(vars(module).get(name), "_flwd_cached", False):
            delattr(module, name)
    _path = None
    _loaded.clear()
    _added.clear()
    _trim()


def _trim() -> None:
    # The loaded entries were malloc'd one by one and freed together: without this, glibc
    # keeps the freed space in the process (its RSS, a server's for weeks) for reuse.
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _modules() -> list[tuple[Any, str]]:
    """The modules to serve (imported now), unless one has such a global already."""
    import importlib

    found = []
    for module_name, name in _SERVED:
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # attrs comes with trio: a flwd without it serves the others
            continue
        if name in vars(module):
            return []
        found.append((module, name))
    return found


def _future_flags(namespace: dict[str, Any]) -> int:
    """The compiler flags of a module's ``from __future__`` imports: what its own call of
    the builtin compiles with (attrs' module has ``annotations``; dataclasses none)."""
    import __future__

    flags = 0
    for value in namespace.values():
        if isinstance(value, __future__._Feature):
            flags |= value.compiler_flag
    return flags


def _cache_path(kind: str) -> str | None:
    base = os.environ.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):  # the spec: a relative value is to be ignored
        home = os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    tag = sys.implementation.cache_tag or "python"
    return os.path.join(base, "flwd", f"code-{kind}-{tag}.bin")


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


def _exec_for(flags: int) -> Callable[..., None]:
    def exec_(source: str | bytes | CodeType, globals: dict[str, Any] | None = None,
              locals: dict[str, Any] | None = None, /) -> None:
        """``exec``, with the code of a text kept."""
        if isinstance(source, str):
            source = _code(source, "<string>", "exec", flags)
        exec(source, globals, locals)

    exec_._flwd_cached = True  # type: ignore[attr-defined]
    return exec_


def _compile_for(flags: int) -> Callable[..., Any]:
    def compile_(source: Any, filename: Any, mode: str, flags_: int = 0,
                 dont_inherit: bool = False, optimize: int = -1) -> Any:
        """``compile``, with the code of a text kept."""
        if (isinstance(source, str) and isinstance(filename, str) and not flags_
                and not dont_inherit and optimize == -1):
            return _code(source, filename, mode, flags)
        if not dont_inherit:
            flags_ |= flags
        return compile(source, filename, mode, flags_, dont_inherit=True, optimize=optimize)

    compile_._flwd_cached = True  # type: ignore[attr-defined]
    return compile_


def _code(source: str, filename: str, mode: str, flags: int) -> CodeType:
    """The code of ``source`` as the builtin compiles it in a module of ``flags`` (its
    __future__ imports, not this module's own ``annotations``)."""
    key = f"{flags}\0{mode}\0{filename}\0{source}"
    stored = _loaded.get(key) or _added.get(key)
    if stored is not None:
        try:
            code = marshal.loads(stored)
        except (ValueError, EOFError, TypeError):
            code = None
        if isinstance(code, CodeType):
            return code
    compiled: CodeType = compile(source, filename, mode, flags, dont_inherit=True)
    if not (filename.startswith("<attrs generated") and "def __hash__" in source):
        # An attrs __hash__ holds hash() of a string, which differs in every process
        # (PYTHONHASHSEED): such a text never comes again, and would only grow the file.
        _added[key] = marshal.dumps(compiled)
    return compiled
