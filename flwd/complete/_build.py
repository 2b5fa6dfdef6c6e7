"""Building the job index from a scripts root: the slow path of completion.

Runs only when the cached index is missing or stale, so it may use the real
loaders (:func:`flwd.jobs.discover`, :func:`flwd.jobs.load_aliases`; YAML and
pydantic). A broken config only removes its job from the index, as discovery
reports it instead of raising; an invalid alias is left out.

The freshness stamp is taken *before* discovery reads anything: a file changed
while the index is built then no longer matches its recorded stamp, and the
next completion rebuilds. The walk mirrors ``flwd.jobs._discovery._config_files``
(same skipped directories, symlinked directories not followed).
"""

from __future__ import annotations

import marshal
import os
from pathlib import Path
from typing import Any

from flwd.jobs import (
    ALIASES_FILE,
    PATH_FORMATS,
    AliasIndex,
    Arg,
    Catalog,
    Job,
    discover,
    flag_help,
    load_aliases,
    plain,
)

from ._cache import stamp
from ._index import FORMAT, empty_node
from ._verbs import BOOLEAN, PATHS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._index import Index, JobFlags, Node
    from ._verbs import Flag


def build_index(root: str, data: str | None = None) -> Index:
    """The index of the scripts root ``root`` (an absolute path) and of the sources
    registered in the data dir ``data``, stamp included."""
    dirs, files = stamp(root)
    catalog = discover(Path(root))
    if data is None:
        aliases = load_aliases(Path(root), catalog)
    else:
        catalog, aliases = _with_sources(root, data, catalog, dirs, files)
    tree, jobs = job_tree(catalog, aliases)
    return {"format": FORMAT, "root": root, "dirs": dirs, "files": files,
            "tree": tree, "jobs": jobs}


def _with_sources(root: str, data: str, catalog: Catalog, dirs: list[tuple[str, int]],
                  files: list[tuple[str, int, int]]) -> tuple[Catalog, AliasIndex]:
    """Add the jobs of the data dir's sources (``<source>/<id>``), and what to stamp.

    Registering, refreshing or removing a source rewrites the sources marker
    (``flwd.store.SOURCES_MARKER``); before the first source there is no
    marker, and its creation changes the modification time of ``sources/``.
    """
    from flwd.jobs import read_alias_entries
    from flwd.sources import index_source, load_sources, merge, read_replica_sources
    from flwd.store import SqliteStore, sources_marker

    data_path = Path(data)
    marker = sources_marker(data_path)
    try:  # the folder must exist to be stamped: the marker's creation changes it
        data_path.mkdir(parents=True, exist_ok=True, mode=0o700)
        marker.parent.mkdir(exist_ok=True, mode=0o700)
        dirs.append((str(marker.parent), os.stat(marker.parent).st_mtime_ns))
        result = os.stat(marker)
        files.append((str(marker), result.st_mtime_ns, result.st_size))
    except OSError:
        pass  # no marker yet (or an unwritable data dir: nothing to notice there)
    local_entries, local_issues = read_alias_entries(Path(root), ALIASES_FILE)
    indexes = []
    try:
        sources = load_sources(SqliteStore(data_path / "flwd.db"))
        # A server on a shared Core DB (PostgreSQL) says what it serves, with this
        # host's checkouts: those win over the data dir's SQLite file.
        served = read_replica_sources(data_path / "sources")
        names = {source.name.casefold() for source in served}
        sources = [source for source in sources if source.name.casefold() not in names]
        sources += served
    except Exception:  # an unreadable Core DB: complete the workspace alone
        sources = []
    for source in sources:
        index = index_source(source)
        if index.catalog.jobs and source.state.root is not None:
            more_dirs, more_files = stamp(source.state.root)
            dirs.extend(more_dirs)
            files.extend(more_files)
        indexes.append(index)
    return merge(catalog, local_entries, local_issues, indexes)


def segments(job_id: str) -> list[str]:
    """The words of a job id: ``a.b`` → ``[a, b]``; a source prefix is the first word
    (``tools/lint.go`` → ``[tools, lint, go]``)."""
    source, slash, local = job_id.rpartition("/")
    words = local.split(".")
    return [source, *words] if slash else words


def job_tree(catalog: Catalog, aliases: AliasIndex) -> tuple[Node, dict[str, bytes]]:
    """The segment tree of the catalog's jobs and aliases, and each job's flags (marshalled)."""
    tree = empty_node("root")
    names: dict[int, str] = {}
    counts: dict[int, int] = {}
    displays: dict[int, str] = {}
    jobs: dict[str, bytes] = {}
    for job in catalog.jobs:
        node = tree
        words = segments(job.id)
        for position, word in enumerate(words):
            key = word.casefold()
            child = node["kids"].get(key)
            if child is None:
                is_source = position == 0 and "/" in job.id
                child = empty_node("source" if is_source else "group")
                node["kids"][key] = child
                names[id(child)] = word
            counts[id(child)] = counts.get(id(child), 0) + 1
            node = child
        node["kind"] = "job"
        node["job"] = job.id
        displays[id(node)] = _job_display(job, names[id(node)])
        flags: Any = job_flags(job.config.args)  # a TypedDict: plain dicts to marshal
        jobs[job.id] = marshal.dumps(flags)
    for alias in aliases.listing():
        key = alias.name.casefold()
        if key in tree["kids"]:
            continue  # a job or group of that name: its word resolves to it first
        child = empty_node("alias", alias.target_id)
        tree["kids"][key] = child
        names[id(child)] = alias.name
        details = ", ".join(filter(None, [f"alias -> {alias.target_path}", alias.description]))
        displays[id(child)] = f"{alias.name} ({details})"

    def fill(node: Node) -> None:
        for child in node["kids"].values():
            fill(child)
            if id(child) not in displays:
                count = counts.get(id(child), 0)
                kind = "source" if child["kind"] == "source" else "group"
                displays[id(child)] = f"{kind} of {count} job{'s' if count != 1 else ''}"
        node["listing"] = sorted(
            (names[id(child)].casefold(), names[id(child)], displays[id(child)])
            for child in node["kids"].values()
        )

    fill(tree)
    return tree, jobs


def _job_display(job: Job, word: str) -> str:
    if job.summary:
        return job.summary
    return job.name if job.name != job.id else word


def job_flags(args: list[Arg]) -> JobFlags:
    """The completion view of a job's argspec: flags, their values, their spellings.

    A secret ``api_key`` also gets ``--api_key-file``, completed with file paths (as an
    argument of ``format: file``, ``directory`` or ``path`` is); ``--api_key -`` is in
    its description (from :func:`flwd.jobs.flag_help`).
    """
    texts: dict[str, str] = {}
    for form, text in flag_help(args):
        texts.setdefault(form.split()[0].rstrip(","), text)  # a secret's own row comes first
    entries: list[tuple[Flag, tuple[str, ...], str]] = []  # flag, spellings, its argument
    taken = {spelling for arg in args for spelling in arg.flag_names}
    for arg in args:
        values: tuple[str, ...] = ()
        if arg.type == "boolean":
            values = BOOLEAN
        elif arg.enum is not None:
            values = tuple(plain(choice) for choice in arg.enum)
        elif arg.type == "array" and arg.items_enum is not None:
            values = tuple(plain(choice) for choice in arg.items_enum)
        elif arg.format in PATH_FORMATS:
            values = PATHS
        description = texts.get(arg.flag, arg.flag)
        if arg.is_secret:
            description += f" (--{arg.name} - reads stdin)"
        entries.append(((arg.name, description, values, arg.type in ("array", "object")),
                         arg.flag_names, arg.name))
        if arg.is_secret:
            # As the job flag parser: a real argument of that name wins.
            files = tuple(f"{spelling}-file" for spelling in arg.flag_names
                          if f"{spelling}-file" not in taken)
            if files:
                flag = f"{arg.flag}-file"
                entries.append(((files[0], texts.get(flag, flag), PATHS, False), files,
                                 arg.name))
    entries.sort(key=lambda entry: entry[0][0].casefold())
    spellings: dict[str, int] = {}
    by_arg: dict[str, list[int]] = {}
    for position, (_flag, names, owner) in enumerate(entries):
        for spelling in names:
            spellings.setdefault(spelling.casefold(), position)
        by_arg.setdefault(owner, []).append(position)
    pairs: dict[int, int] = {}
    for positions in by_arg.values():
        if len(positions) == 2:
            pairs[positions[0]], pairs[positions[1]] = positions[1], positions[0]
    return {"flags": [flag for flag, _names, _owner in entries], "spellings": spellings,
            "pairs": pairs}
