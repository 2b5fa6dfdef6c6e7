"""Process-wide CLI options (``--scripts``, ``--data-dir``, ``--debug``) and shared helpers."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flwd.errors import ConfigInvalid, JobNotFound
from flwd.jobs import Catalog, Job, discover
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


def load_catalog(settings: Settings, *, quiet: bool = True) -> Catalog:
    """Discover the workspace's jobs; unless ``quiet``, report problems on stderr."""
    catalog = discover(settings.scripts_root, display_base=settings.workspace)
    if not quiet:
        for issue in catalog.errors:
            sys.stderr.write(f"flwd: error: {issue.path}: {issue.message}\n")
        for issue in catalog.warnings:
            sys.stderr.write(f"flwd: warning: {issue.path}: {issue.message}\n")
    return catalog


def resolve_job(catalog: Catalog, tokens: Sequence[str], settings: Settings) -> tuple[Job, list[str]]:
    """Find the job the leading words name.

    When they name a job whose config failed to load, the config error is the
    answer (not "unknown job"); other broken configs stay quiet here —
    ``flwd :jobs`` lists them.
    """
    try:
        return catalog.resolve(tokens)
    except JobNotFound:
        words = [t for t in itertools.takewhile(lambda t: not t.startswith("-"), tokens)]
        wanted = {".".join(words[:n]).lower() for n in range(1, len(words) + 1)}
        for issue in catalog.errors:
            if _derived_id(issue.path, settings) in wanted:
                raise ConfigInvalid(f"{issue.path}: {issue.message}",
                                    hint="fix the file, then retry") from None
        raise


def _derived_id(path: str, settings: Settings) -> str:
    parts = Path(path).parts
    root = settings.scripts_root.name
    if len(parts) >= 3 and parts[-2:] == ("config.d", "config.yaml"):
        inner = parts[1:-2] if parts[0] == root else parts[:-2]
        return ".".join(inner).lower()
    return ""
