"""Process-wide CLI options (``--scripts``, ``--data-dir``, ``--debug``) and shared helpers."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from flwd.jobs import Catalog, discover
from flwd.settings import Settings, resolve_settings


@dataclass(slots=True)
class Context:
    scripts: str | None = None
    data_dir: str | None = None
    debug: bool = False

    def settings(self, *, require_scripts: bool = True) -> Settings:
        return resolve_settings(scripts=self.scripts, data_dir=self.data_dir,
                                require_scripts=require_scripts)


#: Set by ``main`` before any command runs.
CONTEXT = Context()


def load_catalog(settings: Settings, *, quiet: bool = False) -> Catalog:
    """Discover the workspace's jobs; errors and warnings go to stderr as one line each."""
    catalog = discover(settings.scripts_root, display_base=settings.workspace)
    if not quiet:
        for issue in catalog.errors:
            sys.stderr.write(f"flwd: error: {issue.path}: {issue.message}\n")
        for issue in catalog.warnings:
            sys.stderr.write(f"flwd: warning: {issue.path}: {issue.message}\n")
    return catalog
