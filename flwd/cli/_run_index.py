"""The run index: what ``flwd JOB`` needs of the workspace, kept from one discovery to the
next (issue 17), so that a run neither reads nor validates every job's config.

A run needs one job; discovery reads and validates each config of the workspace (a third
of a millisecond or more each). The run index of a scripts root keeps what discovery
found: each usable job as discovery made it (pickled: its validated config with the
argspec, the interpreter, the env, the policy's and the notifier's settings, its scripts),
the ids several configs claim, the usable aliases and the names of the unusable ones,
and what the notifier of a run reads of ``flwd.yaml`` (its ``notify:`` value, unchecked,
for the file as it was: see :func:`flwd.jobs.know_workspace_notify`), so that a run
parses no YAML.
With it comes the completion index's stamp of everything discovery read
(:func:`flwd.complete.stamp`): checking it is ``stat`` calls only. It is kept at
``<data dir>/run-index/<hash>-<root name>.idx``.

It answers only when it says what discovery would; on any doubt the caller discovers
(and writes a new index):

- no file, another format or scripts root, a corrupt file or job;
- other code than the one that wrote it (flwd's version, Python's, pydantic's, any
  module of flwd.jobs, flwd.schedule or of this resolution: pickles are of their classes);
- anything stamped changed since (a config, ``flwd.yaml``, a job directory's listing);
- the data dir has sources (their jobs, from elsewhere, are not in it);
- the words name nothing usable in it (an unknown job, an ambiguous id, an unusable
  alias, a broken config): discovery then says what is wrong, as it always did.

An index is not written when something it stamps was modified in the last
:data:`RACY_NS` nanoseconds: a second edit within the file system's timestamp
granularity, of the same size, would leave its stamp as it was.
"""

from __future__ import annotations

import itertools
import marshal
import os
import pickle
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import flwd
from flwd.complete import cache_path, is_fresh, stamp
from flwd.complete import save as save_index
from flwd.jobs import (
    ALIASES_FILE,
    Alias,
    AliasIndex,
    Catalog,
    Job,
    file_key,
    know_workspace_notify,
    read_workspace_notify,
)
from flwd.settings import Settings

from ._context import load_workspace

#: The data dir's folder of run indexes (one file per scripts root).
FOLDER = "run-index"
#: Bumped whenever the layout (or what is pickled in it) changes.
FORMAT = 2
#: What was modified this recently (by the system's clock) is not trusted to its stamp.
RACY_NS = 2_000_000_000
#: The packages whose classes are pickled in an index or whose code decides what it holds.
_CODE = ("jobs", "schedule", "cli/_run_index.py", "cli/_context.py")

Found = tuple[Job, list[str], Alias | None]


def lookup(settings: Settings, tokens: Sequence[str]) -> Found | None:
    """The job the leading words of ``tokens`` name, the words after it and the alias
    used, as discovery would resolve them; None on any doubt (see the module docstring).

    Blocking (a file, ``stat`` calls, a look at the Core DB's sources).
    """
    root = os.path.abspath(settings.scripts_root)
    try:
        with open(cache_path(str(settings.data_dir), root, folder=FOLDER), "rb") as file:
            index = marshal.loads(file.read())
        if (not isinstance(index, dict) or index.get("format") != FORMAT
                or index.get("root") != root or index.get("code") != code_key()
                or not is_fresh(index) or _has_sources(settings)):
            return None
        found = _resolve(index, tokens)
        if found is None:
            return None
        job_key, rest, alias_key = found
        job = pickle.loads(index["jobs"][job_key])
        alias = pickle.loads(index["aliases"][alias_key][1]) if alias_key else None
        notify = index["notify"]
        notify_read = None if notify is None else (tuple(notify[0]), pickle.loads(notify[1]))
    except Exception:  # unreadable, corrupt, of another pickle: discovery knows
        return None
    if (not isinstance(job, Job) or not (alias is None or isinstance(alias, Alias))
            or index.get("pydantic") != _pydantic_version()):
        return None
    if notify_read is not None:
        # The notifier's read of flwd.yaml, kept for the file as it was (it checks).
        know_workspace_notify(Path(root), *notify_read)
    return job, rest, alias


def discover_for_run(settings: Settings) -> tuple[Catalog, AliasIndex]:
    """:func:`~flwd.cli._context.load_workspace`, and the run index of what it found
    written when it can be trusted (nothing is said when it cannot be written).

    Blocking.
    """
    root = os.path.abspath(settings.scripts_root)
    started = time.time_ns()
    try:
        # Taken before discovery reads anything: a file changed meanwhile is stale.
        stamped = None if _has_sources(settings) else stamp(root)
    except Exception:
        stamped = None  # a Core DB that cannot be read: discovery reports it
    catalog, aliases = load_workspace(settings)
    if stamped is not None:
        _write(settings, root, stamped, started, catalog, aliases)
    return catalog, aliases


def code_key() -> str:
    """What identifies the code an index was written by (see the module docstring)."""
    base = os.path.dirname(flwd.__file__)
    parts = [flwd.__version__, sys.version, str(FORMAT)]
    for entry in _CODE:
        path = os.path.join(base, entry)
        names = sorted(os.listdir(path)) if os.path.isdir(path) else [""]
        for name in names:
            if name.endswith(".py") or not name:
                result = os.stat(os.path.join(path, name) if name else path)
                parts.append(f"{entry}/{name}:{result.st_mtime_ns}:{result.st_size}")
    return "|".join(parts)


def _pydantic_version() -> str:
    # Loaded by then: the job's config is a pydantic model.
    from pydantic.version import VERSION

    return VERSION


def _has_sources(settings: Settings) -> bool:
    store = settings.open_store()
    return store.exists() and bool(store.load_sources())


def _resolve(index: dict[str, Any], tokens: Sequence[str]) -> tuple[str, list[str], str] | None:
    """``Catalog.resolve`` then ``resolve_job``'s alias, on the index: (the job's key, the
    rest, the alias's key or ``""``); None where discovery would raise or name another."""
    jobs: dict[str, bytes] = index["jobs"]
    duplicates = set(index["duplicates"])
    words = list(itertools.takewhile(lambda token: not token.startswith("-"), tokens))
    for count in range(len(words), 0, -1):
        names = [".".join(words[:count])]
        if count > 1 and "/" not in words[0]:
            names.append(f"{words[0]}/{'.'.join(words[1:count])}")
        for name in names:
            key = name.casefold()
            if key in jobs:
                return key, list(tokens[count:]), ""
            if key in duplicates:
                return None
    if not words:
        return None
    key = words[0].casefold()
    alias = index["aliases"].get(key)
    if key in set(index["blocked"]) or alias is None or alias[0] not in jobs:
        return None
    return alias[0], list(tokens[1:]), key


def _write(settings: Settings, root: str, stamped: tuple[list[tuple[str, int]],
           list[tuple[str, int, int]]], started: int, catalog: Catalog,
           aliases: AliasIndex) -> None:
    dirs, files = stamped
    newest = max([mtime for _path, mtime in dirs] + [mtime for _path, mtime, _size in files])
    if newest > started - RACY_NS:
        return
    if any(job.source is not None for job in catalog.jobs):
        return  # a source registered meanwhile: its jobs are not the workspace's
    try:
        # What the notifier of a run reads of flwd.yaml (its notify: rules), taken with the
        # file's identity first: a file changed meanwhile is read again by the run.
        notify_path = Path(root) / ALIASES_FILE
        notify_key = file_key(notify_path)
        notify = None if notify_key is None else (
            notify_key, pickle.dumps(read_workspace_notify(Path(root)), pickle.HIGHEST_PROTOCOL))
        index = {
            "format": FORMAT, "root": root, "code": code_key(), "pydantic": _pydantic_version(),
            "notify": notify,
            "dirs": dirs, "files": files,
            "jobs": {job.id.casefold(): pickle.dumps(job, pickle.HIGHEST_PROTOCOL)
                     for job in catalog.jobs},
            "duplicates": list(catalog.duplicates),
            "aliases": {key: (alias.target_id.casefold(),
                              pickle.dumps(alias, pickle.HIGHEST_PROTOCOL))
                        for key, alias in aliases.aliases.items()},
            "blocked": [*aliases.collisions, *aliases.invalid],
        }
    except Exception:  # something of a job that does not pickle: no index, runs discover
        return
    save_index(cache_path(str(settings.data_dir), root, folder=FOLDER), index)
