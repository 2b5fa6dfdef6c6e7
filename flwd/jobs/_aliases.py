"""Aliases: friendly command names declared in ``<root>/flwd.yaml`` (sans-IO but for the read).

::

    aliases:
      - from: demo          # the target job (id, or its path with '/')
        to: hello-demo      # the alias name
        description: Shortcut for demo job

Every declaration is checked against the catalog; a bad one never hides the
good ones and is reported with a code: ``alias.reserved`` (leading ``:`` or a
built-in verb), ``alias.name.invalid``, ``alias.name.conflict`` (the name is a
job id, or an id several configs claim), ``alias.target.invalid`` (no such job,
or an ambiguous id), ``alias.collision`` (one name, several targets).

The file is read through :func:`~flwd.jobs._yaml.load_yaml`, within the same
limits as a job config.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import (
    AliasCollision,
    AliasNameConflict,
    AliasNameInvalid,
    AliasReserved,
    AliasTargetInvalid,
    FlwdError,
)
from ._discovery import Catalog, DiscoveryIssue, Job
from ._workspace_notify import notify_rules
from ._yaml import YamlRefused, clip, load_yaml, read_yaml_file

ALIASES_FILE = "flwd.yaml"
#: Verbs of flwd itself: an alias may not shadow them.
BUILTIN_VERBS = frozenset({"completion", "init", "help", "__complete"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: The top-level keys of ``flwd.yaml`` (``notify:`` is the notifier's, ``hooks:`` is read
#: by flwd.hooks).
FILE_KEYS = frozenset({"aliases", "notify", "hooks"})


@dataclass(frozen=True, slots=True)
class Alias:
    name: str
    target_id: str
    target_path: str
    description: str | None = None
    source: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "target_path": self.target_path,
                               "target_id": self.target_id}
        if self.source:
            out["source"] = self.source
        if self.description:
            out["description"] = self.description
        return out


@dataclass(slots=True)
class AliasIndex:
    """Valid aliases by lower-cased name, and what was wrong with the others."""

    aliases: dict[str, Alias] = field(default_factory=dict)
    collisions: dict[str, list[Alias]] = field(default_factory=dict)
    invalid: dict[str, FlwdError] = field(default_factory=dict)
    #: What is wrong with a ``flwd.yaml`` itself (unreadable, not a list …).
    errors: list[DiscoveryIssue] = field(default_factory=list)
    #: Each declaration behind ``invalid``, as an error of its file (the reference
    #: lists a bad alias in ``errors`` too, §14.3); kept apart from ``errors`` so
    #: that a count or a report of both does not say it twice.
    invalid_issues: list[DiscoveryIssue] = field(default_factory=list)

    def find(self, name: str) -> Alias | None:
        """The alias called ``name``, or None if there is none.

        Raises:
            AliasCollision / AliasReserved / …: the name is declared but unusable.
        """
        key = name.casefold()
        if key in self.collisions:
            contenders = self.collisions[key]
            raise AliasCollision(
                f"alias '{name}' resolves to several jobs: "
                + ", ".join(sorted({a.target_id for a in contenders})),
                hint="keep one declaration of it in flwd.yaml", alias=name,
                contenders=[a.to_json() for a in contenders])
        if key in self.invalid:
            raise self.invalid[key]
        return self.aliases.get(key)

    def issues(self) -> list[DiscoveryIssue]:
        """Every problem of the aliases files, the unusable declarations included:
        the ``errors`` (and ``warnings``) of ``:jobs --json`` and ``GET /discovery``."""
        return [*self.errors, *self.invalid_issues]

    def listing(self) -> list[Alias]:
        return sorted(self.aliases.values(), key=lambda a: a.name.casefold())

    def to_json(self) -> dict[str, Any]:
        """The ``aliases``/``alias_collisions``/``alias_invalid`` members of ``:jobs --json``."""
        return {
            "aliases": [alias.to_json() for alias in self.listing()],
            "alias_collisions": {name: [a.to_json() for a in contenders]
                                 for name, contenders in sorted(self.collisions.items())},
            "alias_invalid": {name: {"code": error.problem.code, "detail": error.detail}
                              for name, error in sorted(self.invalid.items())},
        }


def discovery_problems(catalog: Catalog, aliases: AliasIndex,
                       more: Iterable[DiscoveryIssue] = ()) -> dict[str, list[dict[str, str]]]:
    """The ``errors`` and ``warnings`` of ``flwd :jobs --json`` and ``GET /discovery``:
    every problem of the configs and of the aliases files (and ``more``: the hooks'),
    each under its level (one classification for both, so that the CLI's lines, local
    or remote, agree with it).

    A colliding alias is in neither: ``alias_collisions`` lists it (as the reference
    does); it counts among the errors of ``X-Flwd-Discovery-Errors``.
    """
    issues = [*catalog.errors, *catalog.warnings, *aliases.issues(), *more]
    return {"errors": [issue.to_json() for issue in issues if issue.level == "error"],
            "warnings": [issue.to_json() for issue in issues if issue.level == "warning"]}


def _target(raw: str) -> str:
    text = raw.strip().replace("\\", "/").replace(":", "/").replace(" ", "")
    while "//" in text:
        text = text.replace("//", "/")
    return text.strip("/")


def read_alias_entries(root: Path, display: str) -> tuple[list[dict[str, Any]],
                                                           list[DiscoveryIssue]]:
    """The raw ``aliases`` entries of ``<root>/flwd.yaml`` (a missing file is no aliases)."""
    path = root / ALIASES_FILE
    try:
        if not path.is_file():  # a FIFO or a directory in its place is no file to read
            return [], ([] if not path.exists() else
                        [DiscoveryIssue(display, "not a regular file", code="E_CONFIG")])
        data = load_yaml(read_yaml_file(path))
    except FileNotFoundError:
        return [], []
    except (OSError, UnicodeDecodeError) as exc:
        return [], [DiscoveryIssue(display, f"cannot read: {exc}", code="E_CONFIG")]
    except YamlRefused as exc:
        return [], [DiscoveryIssue(display, str(exc),
                                   code="config.too.large" if exc.limit else "E_CONFIG")]
    if data is None:
        return [], []
    if not isinstance(data, dict) or not isinstance(data.get("aliases", []), list):
        return [], [DiscoveryIssue(display, "expected 'aliases:' to be a list of "
                                            "{from, to, description}", code="E_CONFIG")]
    # A key may hold any text (a line break too): an issue stays one line.
    issues = [DiscoveryIssue(display, f"unknown key '{clip(str(key))}' (ignored)", "warning")
              for key in data if key not in FILE_KEYS]
    if "notify" in data:
        # Checked wherever the aliases are (flwd :jobs lists its problems); the rules
        # themselves are the notifier's (load_workspace_notify).
        issues += notify_rules(data["notify"], display)[1]
    entries = []
    for index, entry in enumerate(data.get("aliases") or []):
        if (not isinstance(entry, dict) or not isinstance(entry.get("from"), str)
                or not isinstance(entry.get("to"), str)):
            issues.append(DiscoveryIssue(display, f"aliases[{index}]: each alias needs 'from' "
                                                  "(the job) and 'to' (the alias name) strings",
                                         code="E_CONFIG"))
            continue
        # Where it was declared, for the error an unusable alias becomes.
        entries.append({**entry, "file": display})
    return entries, issues


def _target_job(name: str, target: str, target_id: str, catalog: Catalog,
                reserved: frozenset[str]) -> Job | FlwdError:
    """The job the alias ``name`` of ``target`` runs, or why it cannot be used."""
    key = name.casefold()
    shown = clip(name)
    if name.startswith(":") or key in reserved:
        return AliasReserved(
            f"alias name '{shown}' is reserved (flwd's own commands start with ':' or are "
            "built-in verbs)", hint="rename the alias in flwd.yaml", alias=name)
    if not _NAME.match(name):
        return AliasNameInvalid(
            f"alias name '{shown}' is not a valid command word",
            hint="use letters, digits, '.', '-' and '_' (no '/' or spaces)", alias=name)
    if catalog.find(name) is not None:
        return AliasNameConflict(
            f"alias name '{shown}' conflicts with the job of the same id",
            hint="rename the alias; the job already answers to that name", alias=name)
    if catalog.ambiguous(name) is not None:
        # Answering to it would pick one of the claimants after all.
        return AliasNameConflict(
            f"alias name '{shown}' conflicts with a job id that several configs claim",
            hint="rename the alias", alias=name)
    ambiguous = catalog.ambiguous(target_id)
    if ambiguous is not None:
        return AliasTargetInvalid(
            f"alias '{shown}' targets '{clip(target)}', an id that "
            f"{len(ambiguous.paths)} configs claim ({', '.join(ambiguous.paths)})",
            hint="set a distinct job.id in all but one of them, then point 'from' at it",
            alias=name, paths=list(ambiguous.paths))
    job = catalog.find(target_id)
    if job is None:
        return AliasTargetInvalid(
            f"alias '{shown}' targets '{clip(target)}', which is not a job",
            hint="point 'from' at a job id listed by 'flwd :jobs'", alias=name)
    return job


def index_aliases(entries: Iterable[dict[str, Any]], catalog: Catalog, *,
                  source: str | None = None, verbs: Iterable[str] = ()) -> AliasIndex:
    """Check alias declarations against ``catalog`` (see the module docstring)."""
    index = AliasIndex()
    reserved = BUILTIN_VERBS | {verb.casefold() for verb in verbs}
    declared: dict[str, list[Alias]] = {}
    for entry in entries:
        name = str(entry["to"]).strip()
        key = name.casefold()
        description = entry.get("description")
        description = str(description) if description is not None else None
        path = _target(str(entry["from"]))
        # An entry of a source's flwd.yaml is tagged with the source: its
        # target is a job of that source (``<source>/<id>``).
        entry_source = entry.get("source", source)
        if entry_source and path.startswith(f"{entry_source}/"):
            path = path[len(entry_source) + 1:]
        target_id = path.replace("/", ".")
        if entry_source:
            target_id = f"{entry_source}/{target_id}"
        job = _target_job(name, str(entry["from"]), target_id, catalog, reserved)
        if isinstance(job, FlwdError):
            index.invalid[key] = job
            index.invalid_issues.append(DiscoveryIssue(
                str(entry.get("file", ALIASES_FILE)), job.one_line(), code=job.problem.code))
            continue
        alias = Alias(name, job.id, job.id.replace(".", "/"), description, entry_source)
        contenders = declared.setdefault(key, [])
        if all(existing.target_id != alias.target_id for existing in contenders):
            contenders.append(alias)
    for key, contenders in declared.items():
        if len(contenders) > 1:
            index.collisions[key] = contenders
        elif key not in index.invalid:
            index.aliases[key] = contenders[0]
    return index


def load_aliases(root: Path, catalog: Catalog, *, display_base: Path | None = None,
                 source: str | None = None) -> AliasIndex:
    """Read ``<root>/flwd.yaml`` and index it against ``catalog``."""
    display = str((root / ALIASES_FILE).relative_to(display_base)) if display_base and \
        (root / ALIASES_FILE).is_relative_to(display_base) else str(root / ALIASES_FILE)
    entries, issues = read_alias_entries(root, display)
    index = index_aliases(entries, catalog, source=source)
    index.errors.extend(issues)
    return index
