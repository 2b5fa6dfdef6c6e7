"""Finding jobs under a scripts root, and looking them up by id or by words.

Discovery reads files but never raises for a single bad job: a broken config, an
invalid id or a duplicate becomes a :class:`DiscoveryIssue` and the other jobs
are still served. Only the caller decides whether issues are fatal.

An id claimed by several configs names no job at all: picking one would run
the other's scripts under its name. Every claimant is reported, and looking the
id up raises :class:`~flwd.errors.JobIdDuplicate` naming all of their paths.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from ..errors import ConfigInvalid, JobIdDuplicate, JobNotFound, UsageError
from ._config import NO_STEPS, STEPS_IGNORED, JobConfig, parse_config
from ._empty import NOTHING_TO_RUN, SCRIPT_NAME, nothing_to_run
from ._notify import NotifyRule
from ._suggest import close_matches, quoted_choice
from ._text import printable
from ._yaml import YamlRefused, clip, read_yaml_file

__all__ = ["Catalog", "DiscoveryIssue", "DuplicateId", "Job", "discover"]

CONFIG_DIR: Final = "config.d"
CONFIG_FILE: Final = "config.yaml"

SKIPPED_DIRS: Final = frozenset({CONFIG_DIR, ".git", "node_modules", "__pycache__"})
_SEGMENT_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_LIST_HINT: Final = "run 'flwd :jobs' to list jobs"
#: The code of the warning that a source's job's ``notify:`` rules are ignored.
SOURCE_NOTIFY: Final = "notify.source"

#: A discovery message is one line of at most this many characters.
_MAX_MESSAGE: Final = 2000


@dataclass(frozen=True)
class Job:
    """A discovered job: where it lives, its validated config and its scripts."""

    id: str
    name: str
    summary: str | None
    dir: Path
    config_path: Path
    rel_dir: str
    # Excluded from the hash: the config holds lists (unhashable); the path
    # fields already identify a job.
    config: JobConfig = field(hash=False)
    scripts: tuple[str, ...]
    source: str | None = None
    #: For a job of a source: ``provenance.source`` of its plans and runs.
    origin: Mapping[str, Any] | None = field(default=None, hash=False, compare=False)
    #: For a job of a source: (working directory, scripts root) of its runs —
    #: the source's checkout instead of the workspace.
    roots: tuple[Path, Path] | None = None
    #: For a job of an OCI add-on: the argv its runs execute inside the add-on
    #: image (instead of ``NNN_`` scripts); None for an add-on job that can only
    #: be planned (its manifest entry has no ``command``).
    command: tuple[str, ...] | None = None
    #: For a job of an OCI add-on: the tools its manifest entry requires
    #: (``requirements.tools``: ``{"name", "version"?}``), shown by its plans.
    tools: tuple[Mapping[str, str], ...] = field(default=(), hash=False, compare=False)
    #: For a job that runs no step (no ``NNN_`` script, no ``composition: steps``):
    #: the warning saying why and how to fix it, repeated by its plans; else None.
    nothing_to_run: str | None = field(default=None, compare=False)
    #: Whether its ``schedule:`` entries fire: a workspace job's do; a source's job's
    #: only when the source was added with ``schedules: true`` (flwd.sources).
    scheduled: bool = field(default=True, compare=False)

    @property
    def notify_rules(self) -> Sequence[NotifyRule]:
        """The ``notify:`` rules its runs follow: none for a job of a source. A rule's
        sinks act as flwd's user on this host, outside any container or policy — a
        command, the user's secret files and environment (``credentials_file``,
        ``headers_env``) sent where the rule says: another repository's config must not
        hold that. Its rules are ignored with a warning, as its ``hooks:`` are."""
        return () if self.source else self.config.notify

    @property
    def is_addon(self) -> bool:
        """A job of an OCI add-on source (it runs in its image, or not at all)."""
        return self.origin is not None and self.origin.get("type") == "oci"

    @property
    def words(self) -> list[str]:
        """The id as CLI words: ``hello.world`` → ``["hello", "world"]``."""
        return self.id.split(".")


@dataclass
class DiscoveryIssue:
    """A problem met during discovery, tied to the file it is about.

    ``code`` is the problem code of an error about one config (``E_CONFIG``,
    ``config.too.large``, ``job.id.duplicate``). The message is kept to one
    bounded line whatever the file quoted into it.
    """

    path: str
    message: str
    level: Literal["error", "warning"] = "error"
    code: str | None = None

    def __post_init__(self) -> None:
        self.message = clip(self.message, _MAX_MESSAGE)

    def to_json(self) -> dict[str, str]:
        key = "error" if self.level == "error" else "warning"
        out = {"path": self.path, key: self.message}
        if self.code is not None:
            out["code"] = self.code
        return out


@dataclass(frozen=True)
class DuplicateId:
    """A job id that several configs claim (``paths``, as shown to users)."""

    id: str
    paths: tuple[str, ...]

    def error(self) -> JobIdDuplicate:
        """What looking the id up raises."""
        return JobIdDuplicate(
            f"job id {_quoted(self.id)} is ambiguous: {_and(self.paths)} "
            f"{'both' if len(self.paths) == 2 else 'all'} claim it, so none of them runs "
            "under it",
            hint="set a distinct job.id in all but one of them",
            job_id=self.id, paths=list(self.paths))

    def issue(self, path: str) -> DiscoveryIssue:
        """The discovery error of the claimant at ``path``."""
        others = [other for other in self.paths if other != path]
        return DiscoveryIssue(
            path,
            f"duplicate job id {_quoted(self.id)}: also claimed by {_and(others)}; none of "
            "them runs under that id (set a distinct job.id to tell them apart)",
            code="job.id.duplicate")


def _quoted(job_id: str) -> str:
    return f"'{clip(job_id)}'"


def _and(items: Sequence[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


@dataclass
class Catalog:
    """The jobs of one root (sorted by id) and what went wrong finding them.

    Built once by :func:`discover` (or by a caller merging catalogs) and then
    only read: the id index is made at construction.
    """

    jobs: list[Job] = field(default_factory=list)
    errors: list[DiscoveryIssue] = field(default_factory=list)
    warnings: list[DiscoveryIssue] = field(default_factory=list)
    #: Ids claimed by several configs, by case-folded id: none of their jobs is
    #: in :attr:`jobs`.
    duplicates: dict[str, DuplicateId] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Whoever builds a catalog (discovery, a merge of sources), one id never
        # silently names one of several jobs.
        claims: dict[str, list[Job]] = {}
        for job in self.jobs:
            claims.setdefault(job.id.casefold(), []).append(job)
        for key, claimants in claims.items():
            if len(claimants) > 1 and key not in self.duplicates:
                self.duplicates[key] = DuplicateId(
                    claimants[0].id, tuple(str(job.config_path) for job in claimants))
        self.jobs = [job for job in self.jobs if job.id.casefold() not in self.duplicates]
        self._by_id = {job.id.casefold(): job for job in self.jobs}

    def find(self, job_id: str) -> Job | None:
        """The job with this id (case-insensitive), or ``None`` (an ambiguous id names
        no job: see :meth:`ambiguous`)."""
        return self._by_id.get(job_id.casefold())

    def ambiguous(self, job_id: str) -> DuplicateId | None:
        """The configs claiming this id when there are several, else ``None``."""
        return self.duplicates.get(job_id.casefold())

    def get(self, job_id: str) -> Job:
        """The job with this id, compared case-insensitively.

        Raises:
            JobIdDuplicate: several configs claim the id (naming every one).
            JobNotFound: with a did-you-mean hint when an id is close.
        """
        job = self.find(job_id)
        if job is None:
            duplicate = self.ambiguous(job_id)
            if duplicate is not None:
                raise duplicate.error()
            raise self._not_found(job_id, [job_id])
        return job

    def resolve(self, tokens: Sequence[str]) -> tuple[Job, list[str]]:
        """The job named by the leading words of a command line, and the rest.

        Words are the tokens before the first one starting with ``-``; they are
        joined with ``.`` so ``hello world``, ``hello.world`` and
        ``hello.world`` + more words all work, at any depth. The longest run of
        words that names a job wins; the remaining tokens (extra words included,
        which the flag parser then reports) are returned.

        Raises:
            UsageError: no job word at all.
            JobIdDuplicate: the longest prefix that names anything names an id
                several configs claim.
            JobNotFound: no prefix of the words names a job.
        """
        words: list[str] = []
        for token in tokens:
            if token.startswith("-"):
                break
            words.append(token)
        if not words:
            raise UsageError("no job given", hint=_LIST_HINT)
        for count in range(len(words), 0, -1):
            names = [".".join(words[:count])]
            if count > 1 and "/" not in words[0]:
                # ``flwd extras hello`` for the job ``hello`` of the source ``extras``.
                names.append(f"{words[0]}/{'.'.join(words[1:count])}")
            for name in names:
                job = self.find(name)
                if job is not None:
                    return job, list(tokens[count:])
                duplicate = self.ambiguous(name)
                if duplicate is not None:
                    raise duplicate.error()
        candidates = [".".join(words[:count]) for count in range(len(words), 0, -1)]
        raise self._not_found(candidates[0], candidates)

    def _not_found(self, shown: str, candidates: list[str]) -> JobNotFound:
        ids = [job.id for job in self.jobs]
        matches: list[str] = []
        for candidate in candidates:
            for match in close_matches(candidate, ids):
                if match not in matches:
                    matches.append(match)
        hint = f"did you mean {quoted_choice(matches[:3])}?" if matches else _LIST_HINT
        # Words come from argv: bytes that are not UTF-8 are shown as such (caf\xe9).
        shown = printable(shown, argv=True)
        return JobNotFound(f"unknown job '{shown}'", hint=hint, job_id=shown)


def _valid_id(job_id: str) -> bool:
    return all(_SEGMENT_RE.fullmatch(segment) for segment in job_id.split("."))


def _config_files(root: Path) -> Iterator[Path]:
    """Every ``<dir>/config.d/config.yaml`` under ``root``, root included.

    Hidden directories, ``node_modules``, ``__pycache__`` and ``config.d`` itself
    are not entered, nor are symlinked directories (a link back up the tree would
    loop, and a link out of the root would escape it).
    """
    pending = [root]
    while pending:
        directory = pending.pop()
        candidate = directory / CONFIG_DIR / CONFIG_FILE
        if candidate.is_file():
            yield candidate
        try:
            with os.scandir(directory) as entries:
                children = [
                    Path(entry.path)
                    for entry in entries
                    if entry.is_dir(follow_symlinks=False)
                    and entry.name not in SKIPPED_DIRS
                    and not entry.name.startswith(".")
                ]
        except OSError:
            continue  # unreadable directory: nothing to find there
        pending.extend(sorted(children, reverse=True))


def _scripts(job_dir: Path) -> tuple[str, ...]:
    names: list[str] = []
    try:
        with os.scandir(job_dir) as entries:
            for entry in entries:
                if SCRIPT_NAME.match(entry.name) and entry.is_file():
                    names.append(entry.name)
    except OSError:
        return ()
    return tuple(sorted(names))


def discover(
    root: Path, *, namespace: str | None = None, display_base: Path | None = None
) -> Catalog:
    """Find every job under ``root``.

    Args:
        root: the scripts root (e.g. ``<workspace>/scripts`` or a source checkout).
        namespace: a source name; job ids become ``<namespace>/<id>``.
        display_base: paths in issues are shown relative to it when possible
            (``scripts/broken/config.d/config.yaml``), else absolute.

    A config at the root itself gets the root directory's name as id. When
    several jobs share an id (case-insensitively) none of them is kept: each is
    reported as a ``job.id.duplicate`` error naming the others, and the id is in
    :attr:`Catalog.duplicates`.
    """
    if namespace is not None and not _SEGMENT_RE.fullmatch(namespace):
        raise ValueError(f"invalid namespace {namespace!r}")
    root = Path(os.path.abspath(root))
    base = Path(os.path.abspath(display_base)) if display_base is not None else None

    def display(path: Path) -> str:
        if base is not None:
            try:
                return path.relative_to(base).as_posix()
            except ValueError:
                pass
        return str(path)

    errors: list[DiscoveryIssue] = []
    warnings: list[DiscoveryIssue] = []
    if not root.exists():
        errors.append(DiscoveryIssue(display(root), f"scripts root {display(root)} does not exist"))
        return Catalog(errors=errors)
    if not root.is_dir():
        errors.append(
            DiscoveryIssue(display(root), f"scripts root {display(root)} is not a directory")
        )
        return Catalog(errors=errors)

    found: list[tuple[str, Job]] = []
    for config_path in sorted(_config_files(root), key=lambda path: path.as_posix()):
        shown = display(config_path)
        job = _load(root, config_path, shown, namespace, errors, warnings)
        if job is not None:
            found.append((shown, job))

    claims: dict[str, list[tuple[str, Job]]] = {}
    for shown, job in found:  # sorted by config path
        claims.setdefault(job.id.casefold(), []).append((shown, job))
    jobs: list[Job] = []
    duplicates: dict[str, DuplicateId] = {}
    for key, claimants in claims.items():
        if len(claimants) == 1:
            jobs.append(claimants[0][1])
            continue
        duplicate = DuplicateId(claimants[0][1].id, tuple(shown for shown, _ in claimants))
        duplicates[key] = duplicate
        errors.extend(duplicate.issue(shown) for shown, _ in claimants)
    jobs.sort(key=lambda job: job.id.casefold())
    return Catalog(jobs=jobs, errors=errors, warnings=warnings, duplicates=duplicates)


def _load(
    root: Path,
    config_path: Path,
    shown: str,
    namespace: str | None,
    errors: list[DiscoveryIssue],
    warnings: list[DiscoveryIssue],
) -> Job | None:
    job_dir = config_path.parent.parent
    try:
        text = read_yaml_file(config_path)
    except YamlRefused as exc:
        errors.append(DiscoveryIssue(shown, str(exc), code="config.too.large"))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(DiscoveryIssue(shown, f"cannot read config: {exc}", code="E_CONFIG"))
        return None
    try:
        parsed = parse_config(text, path=shown)
    except ConfigInvalid as exc:
        message = "; ".join(
            f"{error['arg']}: {error['message']}" if error["arg"] else error["message"]
            for error in exc.errors
        )
        errors.append(DiscoveryIssue(shown, message, code=exc.problem.code))
        return None
    warnings.extend(DiscoveryIssue(shown, warning, "warning") for warning in parsed.warnings)

    config = parsed.config
    rel_dir = job_dir.relative_to(root).as_posix()
    meta = config.job
    if meta is not None and meta.id:
        job_id = meta.id
    elif rel_dir == ".":
        job_id = root.name
    else:
        job_id = rel_dir.replace("/", ".")
    if not _valid_id(job_id):
        origin = "job.id" if meta is not None and meta.id else f"the directory {rel_dir}"
        errors.append(
            DiscoveryIssue(
                shown,
                f"invalid job id {_quoted(job_id)} (from {origin}): each '.'-separated part "
                "must start with a letter or digit and hold only letters, digits, '_' and '-'; "
                "set job.id",
                code="E_CONFIG",
            )
        )
        return None
    if namespace is not None:
        job_id = f"{namespace}/{job_id}"
        if config.notify:
            warnings.append(DiscoveryIssue(
                shown, "notify: ignored: only the workspace's own configs send notifications, "
                       "not a source's (put the rule in scripts/flwd.yaml with jobs: "
                       f"[{job_id}])", "warning", code=SOURCE_NOTIFY))
    scripts = _scripts(job_dir)
    idle = None
    if not scripts and not config.is_dag:
        # A job, as in the reference (its runs complete with zero steps), but surely
        # not what its author meant: a misnamed script, or steps without composition.
        idle = nothing_to_run(job_id, job_dir, config)
        # It says what the warnings about steps would, and how to fix it: one warning.
        warnings[:] = [issue for issue in warnings if issue.path != shown
                       or issue.message not in (STEPS_IGNORED, NO_STEPS)]
        warnings.append(DiscoveryIssue(shown, idle, "warning", code=NOTHING_TO_RUN))
    return Job(
        id=job_id,
        name=(meta.name if meta is not None and meta.name else job_id),
        summary=meta.summary if meta is not None else None,
        dir=job_dir,
        config_path=config_path,
        rel_dir=rel_dir,
        config=config,
        scripts=scripts,
        source=namespace,
        nothing_to_run=idle,
    )
