"""The job catalog of a long-lived process, rediscovered only when configs change."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import trio

from flwd.jobs import (
    ALIASES_FILE,
    AliasIndex,
    Catalog,
    DiscoveryIssue,
    Job,
    discover,
    index_aliases,
    read_alias_entries,
)

_SKIP = frozenset({".git", "node_modules", "__pycache__"})
#: What was modified this recently (by the system's clock) is not trusted to its stamp: a
#: second edit within the file system's timestamp granularity could leave it unchanged
#: (as flwd.cli's run index).
RACY_NS = 2_000_000_000


def _fingerprint(root: Path) -> tuple[tuple[str, int, int], ...]:
    """Every config.yaml (and flwd.yaml) under ``root`` with its mtime and size, and every
    folder above a job's with its mtime (what :meth:`CatalogCache.job_unchanged` checks)."""
    found: list[tuple[str, int, int]] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP and not d.startswith("."))
        names = [n for n in files if n == "flwd.yaml"]
        if os.path.basename(folder) == "config.d":
            names += [n for n in files if n.lower() == "config.yaml"]
            dirs[:] = []
        for name in names:
            path = os.path.join(folder, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue
            found.append((path, stat.st_mtime_ns, stat.st_size))
        # Scripts may be added or removed without touching a config; a job (or a folder
        # that makes its words mean another job) may appear in any folder.
        if os.path.basename(folder) != "config.d":
            try:
                found.append((folder, os.stat(folder).st_mtime_ns, 0))
            except OSError:
                pass
    return tuple(sorted(found))


class CatalogCache:
    """Discovery results reused until a config file (or a job dir listing) changes.

    Checking costs one directory walk with ``stat``, done at most once per
    ``check_interval`` seconds (so a burst of requests shares one check);
    rediscovery (parsing and validating every config) happens only when the
    fingerprint differs.
    """

    def __init__(self, root: Path, display_base: Path, *, check_interval: float = 1.0) -> None:
        self.root = root
        self.display_base = display_base
        self.check_interval = check_interval
        self._fingerprint: tuple[tuple[str, int, int], ...] | None = None
        #: The same, by path (for :meth:`job_unchanged`).
        self._stamps: dict[str, tuple[int, int]] = {}
        self._catalog: Catalog | None = None
        self._aliases = AliasIndex()
        #: The raw entries of ``<root>/flwd.yaml`` (to index with sources' ones).
        self.alias_entries: list[dict[str, Any]] = []
        self.alias_issues: list[DiscoveryIssue] = []
        self._checked_at = -float("inf")
        #: When the check that made ``_catalog`` began (it saw every file written before).
        self._check_started = -float("inf")
        self._lock = trio.Lock()

    def _refresh(self) -> Catalog:
        fingerprint = _fingerprint(self.root)
        if self._catalog is None or fingerprint != self._fingerprint:
            catalog = discover(self.root, display_base=self.display_base)
            path = self.root / ALIASES_FILE
            shown = str(path.relative_to(self.display_base)) if path.is_relative_to(
                self.display_base) else str(path)
            self.alias_entries, self.alias_issues = read_alias_entries(self.root, shown)
            self._aliases = index_aliases(self.alias_entries, catalog)
            self._aliases.errors.extend(self.alias_issues)
            self._catalog = catalog
            self._fingerprint = fingerprint
            self._stamps = {path: (mtime, size) for path, mtime, size in fingerprint}
        return self._catalog

    @property
    def cached(self) -> Catalog | None:
        """The catalog of the last check, however old (None before the first)."""
        return self._catalog

    def job_unchanged(self, job: Job) -> bool:
        """Whether what makes ``job`` the job it is in :attr:`cached` is as that check saw
        it: its config, every folder from the scripts root down to its own (a job or a
        folder added there could make its words name another job) and the root's
        ``flwd.yaml`` (aliases). A few ``stat`` calls where a check walks the whole tree
        (160 ms at 1,001 jobs here); any doubt — a file modified in the last
        :data:`RACY_NS`, a job outside the scripts root — answers False.

        Blocking, but cheap (a ``stat`` per folder level).
        """
        if not job.dir.is_relative_to(self.root):
            return False
        paths = [(str(job.config_path), True)]
        folder = job.dir
        while True:
            paths.append((str(folder), False))
            if folder == self.root:
                break
            folder = folder.parent
        racy = time.time_ns() - RACY_NS
        for path, sized in paths:
            try:
                stat = os.stat(path)
            except OSError:
                return False
            if stat.st_mtime_ns > racy or self._stamps.get(path) != (
                    stat.st_mtime_ns, stat.st_size if sized else 0):
                return False
        aliases = str(self.root / ALIASES_FILE)
        try:
            stat = os.stat(aliases)
        except FileNotFoundError:
            return aliases not in self._stamps
        except OSError:
            return False
        return stat.st_mtime_ns <= racy and self._stamps.get(aliases) == (
            stat.st_mtime_ns, stat.st_size)

    async def get(self, *, fresh_since: float | None = None) -> Catalog:
        """The current catalog (blocking work runs in a thread; one refresh at a time).

        ``fresh_since`` (a ``trio.current_time()``): the answer comes from a check that
        began at or after it — so it sees every file written before then. Callers that
        arrived while one check ran share the next one.

        Cancellation: nothing is left behind (a check under way finishes in its thread).
        """
        async with self._lock:
            now = trio.current_time()
            stale = self._catalog is None or now - self._checked_at >= self.check_interval
            if fresh_since is not None and self._check_started < fresh_since:
                stale = True
            if stale or self._catalog is None:
                started = trio.current_time()
                self._catalog = await trio.to_thread.run_sync(self._refresh)
                self._check_started = started
                self._checked_at = trio.current_time()
            return self._catalog

    async def aliases(self) -> AliasIndex:
        """The aliases of ``<root>/flwd.yaml``, checked against the current catalog."""
        await self.get()
        return self._aliases
