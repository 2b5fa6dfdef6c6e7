"""The ``notify:`` rules of the workspace's ``flwd.yaml``, read again when the file changes."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from flwd.jobs import ALIASES_FILE, NotifyRule, load_workspace_notify

_log = logging.getLogger("flwd.notify")


class WorkspaceRules:
    """The rules of ``<scripts root>/flwd.yaml`` as of the last change of the file.

    :meth:`current` costs one ``stat`` when nothing changed. A rule with a problem is
    left out and logged once per change of the file (``flwd :jobs`` lists it too).
    Not thread-safe: one caller at a time (the notifier asks for one run at a time).
    """

    def __init__(self, scripts_root: Path, display: str = "scripts/flwd.yaml") -> None:
        self.root = scripts_root
        self.display = display
        self._key: tuple[int, int, int] | None = None
        self._rules: list[NotifyRule] = []

    def known(self) -> list[NotifyRule] | None:
        """The rules that apply if the file did not change since it was read, else None.

        One ``stat``, never a read: cheap enough for trio's thread (the notifier asks
        for every run; a hand-off to a worker thread and back costs far more than the
        ``stat``). None means :meth:`current` must read the file (in a thread).
        """
        key = self._stat()
        if key is None:
            self._key, self._rules = None, []
        elif key != self._key:
            return None
        return self._rules

    def current(self) -> list[NotifyRule]:
        """The rules that apply (blocking: a ``stat``, and a read after a change)."""
        key = self._stat()
        if key is None:
            self._key, self._rules = None, []
        elif key != self._key:
            rules, issues = load_workspace_notify(self.root, self.display)
            for issue in issues:
                _log.warning("flwd: %s: %s", issue.path, issue.message)
            self._key, self._rules = key, rules
        return self._rules

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            info = os.stat(self.root / ALIASES_FILE)
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino)
