"""The jobs and aliases of one materialised source (blocking: run it in a thread)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flwd.errors import AddonManifestInvalid
from flwd.jobs import (
    ALIASES_FILE,
    Catalog,
    ContainerConfig,
    DiscoveryIssue,
    DuplicateId,
    Job,
    JobConfig,
    discover,
    read_alias_entries,
)

from ._model import Source
from ._oci import MANIFEST_FILE, read_manifest

#: The code of the warning that a source's job's ``schedule:`` does not fire.
SOURCE_SCHEDULE = "schedule.source"


def _shown_config(job: Job, checkout: Path) -> str:
    try:
        return job.config_path.relative_to(checkout).as_posix()
    except ValueError:
        return str(job.config_path)


@dataclass(slots=True)
class SourceIndex:
    """What a source contributes to the catalog."""

    catalog: Catalog = field(default_factory=Catalog)
    #: Raw ``flwd.yaml`` alias entries, each tagged with ``source``.
    alias_entries: list[dict[str, Any]] = field(default_factory=list)
    issues: list[DiscoveryIssue] = field(default_factory=list)


def index_source(source: Source) -> SourceIndex:
    """Discover ``source``'s jobs as ``<name>/<id>``, each carrying the source's provenance."""
    state = source.state
    if state.status != "ready" or state.root is None or state.checkout_path is None:
        return SourceIndex()
    root, checkout = Path(state.root), Path(state.checkout_path)
    if source.spec.type == "oci":
        return _index_addon(source, checkout)
    found = discover(root, namespace=source.name, display_base=checkout)
    origin = source.provenance()
    scheduled = source.spec.schedules
    jobs = [dataclasses.replace(job, origin=origin, roots=(checkout, root), scheduled=scheduled)
            for job in found.jobs]
    label = f"{source.name}:"
    issues = [DiscoveryIssue(f"{label}{issue.path}", issue.message, issue.level, issue.code)
              for issue in found.errors + found.warnings]
    if not scheduled:
        issues += [DiscoveryIssue(
            f"{label}{_shown_config(job, checkout)}",
            f"schedule: ignored: source {source.name} was added without schedules (add it "
            "again with --schedules, or \"schedules\": true, to let them fire)", "warning",
            SOURCE_SCHEDULE) for job in jobs if job.config.schedule]
    duplicates = {key: DuplicateId(found_id.id, tuple(f"{label}{p}" for p in found_id.paths))
                  for key, found_id in found.duplicates.items()}
    catalog = Catalog(jobs=jobs,
                      errors=[i for i in issues if i.level == "error"],
                      warnings=[i for i in issues if i.level == "warning"],
                      duplicates=duplicates)
    # flwd.yaml next to the jobs, or at the top of the checkout.
    alias_root = root if (root / ALIASES_FILE).is_file() else checkout
    entries, alias_issues = read_alias_entries(alias_root, f"{label}{ALIASES_FILE}")
    return SourceIndex(catalog, [{**entry, "source": source.name} for entry in entries],
                       alias_issues)


def _index_addon(source: Source, home: Path) -> SourceIndex:
    """The jobs of an add-on's cached manifest (validated again: an invalid one gives none)."""
    label = f"{source.name}:{MANIFEST_FILE}"
    try:
        manifest = read_manifest(home)
    except AddonManifestInvalid as exc:
        issues = [DiscoveryIssue(label, "; ".join(e["message"] for e in exc.errors)
                                 or exc.detail, code=exc.problem.code)]
        return SourceIndex(Catalog(errors=issues))
    origin = source.provenance()
    config_path = home / MANIFEST_FILE
    jobs = []
    for entry in manifest.jobs:
        config = JobConfig(executor="container", container=ContainerConfig(image=source.image),
                           args=list(entry.args))
        jobs.append(Job(
            id=f"{source.name}/{entry.id}", name=entry.name, summary=entry.summary,
            dir=home, config_path=config_path, rel_dir=entry.id, config=config, scripts=(),
            source=source.name, origin=origin, roots=(home, home), command=entry.command,
            tools=entry.tools))
    return SourceIndex(Catalog(jobs=sorted(jobs, key=lambda job: job.id.casefold())))
