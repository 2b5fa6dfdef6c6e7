"""The hooks a server serves, rebuilt when the workspace's configs change.

The engine's catalog is rediscovered only when a config (or ``flwd.yaml``) changes,
and then is a new object: the hook index is rebuilt from it then (reading
``flwd.yaml`` and checking every secret can be read, in a thread), and each new
problem of a declaration is logged once. Between changes every request shares one
index.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

import trio

from flwd.hooks import HookIndex, RejectionBudget, load_hooks
from flwd.jobs import Catalog

if TYPE_CHECKING:
    from flwd.engine import Engine

_log = logging.getLogger("flwd.hooks")


class HookBook:
    """The current :class:`~flwd.hooks.HookIndex` of one app, and how many refusals
    each hook may still journal this minute."""

    def __init__(self) -> None:
        self._catalog: Catalog | None = None
        self._index = HookIndex()
        self._logged: set[str] = set()
        self._lock = trio.Lock()
        self.budget = RejectionBudget()

    async def index(self, engine: Engine, *, dev: bool) -> HookIndex:
        """The hooks of the engine's current catalog.

        Raises:
            StorageError: as ``Engine.catalog``.

        Cancellation: nothing is left behind (a rebuild under way in its thread is
        abandoned; the next request starts another).
        """
        catalog = await engine.catalog()
        if catalog is self._catalog:
            return self._index
        async with self._lock:
            if catalog is not self._catalog:
                settings = engine.settings
                index = await trio.to_thread.run_sync(partial(
                    load_hooks, settings.scripts_root, settings.workspace, catalog, dev=dev))
                self._log_new_issues(index)
                self._catalog, self._index = catalog, index
        return self._index

    def _log_new_issues(self, index: HookIndex) -> None:
        current = set()
        for issue in index.issues:
            line = f"{issue.path}: {issue.message}"
            current.add(line)
            if line not in self._logged:
                level = logging.ERROR if issue.level == "error" else logging.WARNING
                _log.log(level, "hook not served" if issue.level == "error" else "hook warning",
                         extra={"fields": {"problem": line, "code": issue.code}})
        self._logged = current
        if index.hooks:
            _log.info("hooks", extra={"fields": {"served": sorted(index.hooks)}})
