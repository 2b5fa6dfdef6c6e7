"""Process-wide CLI options (``--scripts``, ``--data-dir``, ``--db``, ``--server``, ``--debug``), and
the workspace as local mode reads it (its jobs, aliases and sources)."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flwd.errors import ConfigInvalid, JobNotFound, UsageError
from flwd.jobs import (
    ALIASES_FILE,
    Alias,
    AliasIndex,
    Catalog,
    Job,
    close_matches,
    discover,
    index_aliases,
    quoted_choice,
    read_alias_entries,
)
from flwd.settings import Settings, resolve_settings

if TYPE_CHECKING:
    from flwd.sources import SourceIndex


@dataclass(slots=True)
class Context:
    scripts: str | None = None
    data_dir: str | None = None
    #: ``--db URL`` (``FLWD_DB`` when None): the Core DB, when not the data dir's.
    db: str | None = None
    #: ``--server URL`` (``FLWD_SERVER`` when None): remote mode.
    server: str | None = None
    debug: bool = False

    def settings(self, *, require_scripts: bool = True) -> Settings:
        return resolve_settings(scripts=self.scripts, data_dir=self.data_dir,
                                require_scripts=require_scripts, db=self.db)

    def server_url(self) -> str | None:
        """The server of remote mode (``--server`` > ``FLWD_SERVER``), normalised; None: local."""
        raw = self.server if self.server is not None else os.environ.get("FLWD_SERVER", "")
        return normalize_server_url(raw) if raw.strip() else None

    def runs_here(self) -> bool:
        """Local mode: no server is named (a malformed one is remote mode's error)."""
        raw = self.server if self.server is not None else os.environ.get("FLWD_SERVER", "")
        return not raw.strip()


def normalize_server_url(raw: str) -> str:
    """``host:port`` → ``http://host:port``; no trailing ``/``.

    Raises:
        UsageError: not an http(s) URL with a host.
    """
    text = raw.strip()
    if "://" not in text:
        text = "http://" + text
    scheme, _, rest = text.partition("://")
    rest = rest.rstrip("/")
    text = f"{scheme}://{rest}"
    if "@" in rest.split("/", 1)[0]:  # never echo credentials back
        raise UsageError("invalid server URL: credentials do not belong in it",
                         hint="put the token in FLWD_TOKEN")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise UsageError(f"invalid server URL '{raw}': {exc}",
                         hint="use e.g. --server http://127.0.0.1:8080") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"invalid server URL '{raw}'",
                         hint="use an http:// or https:// URL, e.g. --server http://127.0.0.1:8080")
    if parts.query or parts.fragment:
        raise UsageError(f"invalid server URL '{raw}': no query or fragment",
                         hint="use e.g. --server http://127.0.0.1:8080")
    return text


#: Set by ``main`` before any command runs.
CONTEXT = Context()


def load_workspace(settings: Settings, *, quiet: bool = True,
                   warnings: list[str] | None = None) -> tuple[Catalog, AliasIndex]:
    """The jobs and aliases of the workspace and of every source registered in the data
    dir (``<source>/<id>``); unless ``quiet``, a source whose files are gone on stderr
    (or in ``warnings``, when given: a server says it to its client).

    The problems of the configs and aliases are the caller's to report (``flwd :jobs``
    says them from its listing, in local and remote mode alike); an unusable alias
    never hides the jobs.
    """
    local = discover(settings.scripts_root, display_base=settings.workspace)
    path = settings.scripts_root / ALIASES_FILE
    shown = str(path.relative_to(settings.workspace)) if path.is_relative_to(
        settings.workspace) else str(path)
    entries, entry_issues = read_alias_entries(settings.scripts_root, shown)
    indexes = _source_indexes(settings, quiet=quiet, warnings=warnings)
    if indexes is None:  # no sources: the workspace alone (no import of flwd.sources)
        catalog = local
        aliases = index_aliases(entries, catalog)
        aliases.errors.extend(entry_issues)
    else:
        from flwd.sources import merge  # start-up: only with sources (see above)

        catalog, aliases = merge(local, entries, entry_issues, indexes)
    return catalog, aliases


def _source_indexes(settings: Settings, *, quiet: bool,
                    warnings: list[str] | None = None) -> list[SourceIndex] | None:
    """What each ready source of the data dir contributes; None when there are none.

    An absent Core DB means no sources: it is not created just to be read (a
    first ``flwd demo`` stays fast). A source whose files are gone (its
    checkout deleted by hand, a local folder moved) contributes nothing and is
    reported, unless ``quiet``: ``flwd :sources refresh NAME`` brings it back.
    """
    store = settings.open_store()
    # The rows first: a data dir without sources never loads flwd.sources (start-up).
    if not store.exists() or not store.load_sources():
        return None
    from flwd.sources import index_source, load_sources

    sources = load_sources(store)
    if not sources:
        return None
    indexes = []
    for source in sources:
        state = source.state
        if state.status != "ready" or state.checkout_path is None:
            continue
        if not Path(state.checkout_path).is_dir():
            if not quiet:
                line = (f"flwd: warning: source '{source.name}': its files are gone "
                        f"({state.checkout_path}); its jobs are skipped (run "
                        f"'flwd :sources refresh {source.name}')\n")
                if warnings is None:
                    sys.stderr.write(line)
                else:
                    warnings.append(line)
            continue
        indexes.append(index_source(source))
    return indexes


def resolve_job(catalog: Catalog, tokens: Sequence[str], settings: Settings,
                aliases: AliasIndex | None = None) -> tuple[Job, list[str], Alias | None]:
    """Find the job the leading words name, directly or through an alias.

    A job id wins over an alias (an alias may not be named like a job, see
    ``alias.name.conflict``); an alias is only its first word. A declared but
    unusable alias raises its own problem (``alias.reserved``, ``alias.collision``…).
    When the words name a job whose config failed to load, the config error is
    the answer (not "unknown job"); other broken configs stay quiet here —
    ``flwd :jobs`` lists them.
    """
    try:
        job, rest = catalog.resolve(tokens)
        return job, rest, None
    except JobNotFound as not_found:
        if aliases is not None and tokens and not tokens[0].startswith("-"):
            alias = aliases.find(tokens[0])
            if alias is not None:
                return catalog.get(alias.target_id), list(tokens[1:]), alias
            near = close_matches(tokens[0], [a.name for a in aliases.listing()])
            if near and not (not_found.hint or "").startswith("did you mean"):
                not_found.hint = f"did you mean {quoted_choice(near[:3])}?"
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
