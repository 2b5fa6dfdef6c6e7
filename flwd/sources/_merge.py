"""One catalog from the workspace's jobs and every source's (sans-IO)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from flwd.jobs import AliasIndex, Catalog, DiscoveryIssue, index_aliases

from ._index import SourceIndex


def merge(local: Catalog, local_aliases: Sequence[dict[str, Any]],
          local_alias_issues: Sequence[DiscoveryIssue],
          sources: Iterable[SourceIndex]) -> tuple[Catalog, AliasIndex]:
    """The union of the catalogs (source jobs are ``<source>/<id>``, so ids cannot clash)
    and the aliases of every ``flwd.yaml`` checked against it (one name, one target)."""
    jobs = list(local.jobs)
    errors, warnings = list(local.errors), list(local.warnings)
    duplicates = dict(local.duplicates)
    entries = list(local_aliases)
    issues = list(local_alias_issues)
    for index in sources:
        jobs += index.catalog.jobs
        errors += index.catalog.errors
        warnings += index.catalog.warnings
        duplicates.update(index.catalog.duplicates)
        entries += index.alias_entries
        issues += index.issues
    jobs.sort(key=lambda job: job.id.casefold())
    catalog = Catalog(jobs=jobs, errors=errors, warnings=warnings, duplicates=duplicates)
    aliases = index_aliases(entries, catalog)
    aliases.errors.extend(issues)
    return catalog, aliases
