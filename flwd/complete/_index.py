"""The shape of the job index that completion reads (plain dicts, lists and tuples,
so that :mod:`marshal` stores it and loading it imports nothing).

The tree is made of *segments*: a job id ``examples.fail`` is the node ``fail``
under the group ``examples``. Aliases are nodes at the root that point at a job.
A future source namespace (``tools/lint``, issue 5) becomes one more node kind,
``source``, whose children are that source's segments; nothing else changes.

``dirs`` and ``files`` are the freshness stamp of the index (see :mod:`._cache`).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeAlias, TypedDict

    from ._verbs import Flag

    #: ``(casefolded insert, insert, display)`` of one child, for listings.
    Entry: TypeAlias = tuple[str, str, str]

    class Node(TypedDict):
        #: ``root``, ``group``, ``job`` (maybe with children too), ``alias`` or ``source``.
        kind: str
        #: The job id a ``job`` or ``alias`` node runs; ``""`` otherwise.
        job: str
        #: Children by casefolded segment (aliases: by their whole name).
        kids: dict[str, Node]
        #: The children as completion entries, sorted by casefolded insert.
        listing: list[Entry]

    class JobFlags(TypedDict):
        #: The job's own flags (from its argspec), sorted by name; a secret ``api_key``
        #: also has ``api_key-file`` (a file path).
        flags: list[Flag]
        #: Every accepted spelling (``secret_token``, ``secret-token``), casefolded →
        #: index into ``flags``.
        spellings: dict[str, int]
        #: A secret's flag ↔ its ``-file`` flag (indexes into ``flags``, both ways):
        #: two ways to give one value.
        pairs: dict[int, int]

    class Index(TypedDict):
        format: int
        #: The absolute scripts root the index describes.
        root: str
        #: Every directory discovery entered, with its ``st_mtime_ns``.
        dirs: list[tuple[str, int]]
        #: Every config file (and ``flwd.yaml``) with ``st_mtime_ns`` and ``st_size``;
        #: a ``config.d`` directory without a config is listed with size ``-1``.
        files: list[tuple[str, int, int]]
        tree: Node
        #: Each job's :class:`JobFlags`, marshalled on its own: a completion needs
        #: at most one, and decoding a thousand costs more than reading the rest.
        jobs: dict[str, bytes]

#: Bumped whenever the layout above (or what the builder puts in it) changes; an
#: index of another format is rebuilt. 4: a job with nothing to run (no ``NNN_``
#: script) is a job, where format 3 left it out.
FORMAT = 4


def empty_node(kind: str, job: str = "") -> Node:
    """A node without children."""
    return {"kind": kind, "job": job, "kids": {}, "listing": []}


def empty_index(root: str) -> Index:
    """The index of a workspace without jobs (or of one that could not be read)."""
    return {"format": FORMAT, "root": root, "dirs": [], "files": [],
            "tree": empty_node("root"), "jobs": {}}
