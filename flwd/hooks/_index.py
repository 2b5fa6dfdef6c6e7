"""Every hook of a workspace, checked against its jobs: what ``POST /hooks/<name>`` serves.

Hooks are declared in ``<scripts root>/flwd.yaml`` (``hooks:``, next to ``aliases:``)
and in a job's ``config.d/config.yaml`` (``hooks:``; the job is implied). Only the
workspace's own files declare hooks: a source (someone else's repository) cannot
open an endpoint on this server, so its declarations are reported and ignored.

A bad declaration never hides the good ones: it is a discovery issue (``:jobs``,
``GET /discovery``, ``GET /hooks``, the server's log) and its hook is not served.
A name declared twice is served by neither declaration (which one was meant?).

:func:`index_hooks` is sans-IO; :func:`load_hooks` reads ``flwd.yaml`` and checks
that each secret can be read (blocking: call it from a thread in trio).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flwd.errors import ArgsInvalid
from flwd.jobs import (
    ALIASES_FILE,
    Catalog,
    DiscoveryIssue,
    Job,
    YamlRefused,
    bind_json,
    clip,
    load_yaml,
    read_yaml_file,
)

from ._model import Hook
from ._parse import HookInvalid, parse_hook
from ._secrets import secret_exposed, secret_problem


@dataclass(frozen=True, slots=True)
class Declaration:
    """One entry of a ``hooks:`` list, and where it was written."""

    entry: Any
    #: The file, as shown to users.
    path: str
    index: int
    #: The job of the config it is in (None: ``flwd.yaml``).
    job: Job | None = None


@dataclass(slots=True)
class HookIndex:
    """The hooks served, by name, and what is wrong with the others."""

    hooks: dict[str, Hook] = field(default_factory=dict)
    issues: list[DiscoveryIssue] = field(default_factory=list)

    def get(self, name: str) -> Hook | None:
        return self.hooks.get(name)

    def listing(self) -> list[Hook]:
        return sorted(self.hooks.values(), key=lambda hook: hook.name.casefold())

    def to_json(self) -> dict[str, Any]:
        """``GET /hooks``: the hooks (never a secret) and the declarations not served."""
        return {"hooks": [hook.to_json() for hook in self.listing()],
                "errors": [issue.to_json() for issue in self.issues if issue.level == "error"],
                "warnings": [issue.to_json() for issue in self.issues
                             if issue.level == "warning"]}


def _label(declaration: Declaration) -> str:
    entry = declaration.entry
    name = entry.get("name") if isinstance(entry, dict) else None
    return f"hooks[{declaration.index}]" + (f" ({clip(name, 64)})" if isinstance(name, str)
                                            else "")


def index_hooks(declarations: Iterable[Declaration], catalog: Catalog, *, base: Path,
                dev: bool | None) -> HookIndex:
    """Check every declaration against ``catalog``.

    ``base``: what a relative ``secret_file`` is relative to (the workspace).
    ``dev``: the server runs with ``--dev`` (an ``auth: none`` hook is served), or
    not (it is an error); None: not a server (``:jobs``), a warning says so.
    """
    index = HookIndex()
    found: dict[str, list[tuple[Hook, Declaration]]] = {}
    for declaration in declarations:
        label = _label(declaration)
        implied = declaration.job.id if declaration.job is not None else None
        try:
            hook = parse_hook(declaration.entry, base=base, implied_job=implied,
                              declared_in=declaration.path)
            hook = _against_jobs(hook, declaration.job or catalog.find(hook.job), catalog)
        except HookInvalid as exc:
            for where, message in exc.problems:
                index.issues.append(DiscoveryIssue(
                    declaration.path, f"{label}: {where + ': ' if where else ''}{message}",
                    code="hook.invalid"))
            continue
        if hook.auth.none and not dev:
            served = dev is None
            index.issues.append(DiscoveryIssue(
                declaration.path, f"{label}: auth: none is served by 'flwd :serve --dev' only"
                + ("" if served else " (this server is not: the hook is not served)"),
                level="warning" if served else "error", code="hook.auth.none"))
            if not served:
                continue
        found.setdefault(hook.name.casefold(), []).append((hook, declaration))
    for contenders in found.values():
        if len(contenders) == 1:
            hook, _ = contenders[0]
            index.hooks[hook.name] = hook
            continue
        where = ", ".join(f"{declaration.path} {_label(declaration)}"
                          for _, declaration in contenders)
        for hook, declaration in contenders:
            index.issues.append(DiscoveryIssue(
                declaration.path, f"{_label(declaration)}: the name {hook.name} is declared "
                f"{len(contenders)} times ({where}); neither is served: rename all but one",
                code="hook.duplicate"))
    return index


def _against_jobs(hook: Hook, job: Job | None, catalog: Catalog) -> Hook:
    """``hook`` with what its job says of it: its arguments exist, its constants are
    valid, which ones are secret.

    Raises:
        HookInvalid: no such job (or an id several configs claim), an unknown argument,
            a constant the argspec refuses.
    """
    if job is None:
        ambiguous = catalog.ambiguous(hook.job)
        raise HookInvalid([("job", f"{clip(hook.job)} is claimed by {len(ambiguous.paths)} "
                                   "configs; set distinct job ids" if ambiguous else
                                   f"no job {clip(hook.job)} (see 'flwd :jobs')")])
    known = {arg.name: arg for arg in job.config.args}
    problems = [(f"args.{clip(name)}", f"job {job.id} has no argument {clip(name)}")
                for name in hook.args if name not in known]
    constants = {name: source.value for name, source in hook.args.items()
                 if source.kind == "value" and name in known}
    if constants:
        try:
            bind_json([known[name] for name in constants], constants, job_id=job.id)
        except ArgsInvalid as exc:
            problems += [(f"args.{error['arg']}.value", error["message"])
                         for error in exc.errors]
    if problems:
        raise HookInvalid(problems)
    return replace(hook, job=job.id,
                   secret_args=frozenset(arg.name for arg in job.config.args if arg.is_secret))


# -- reading (blocking) ------------------------------------------------------------


def _shown(path: Path, base: Path) -> str:
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def read_declarations(scripts_root: Path, catalog: Catalog, *, display_base: Path
                      ) -> tuple[list[Declaration], list[DiscoveryIssue]]:
    """The ``hooks:`` entries of ``<scripts_root>/flwd.yaml`` and of the workspace's jobs.

    What keeps ``flwd.yaml`` from being read is reported by the aliases' reader
    already (the same file): here it only means no hooks from it.
    """
    declarations: list[Declaration] = []
    issues: list[DiscoveryIssue] = []
    path = scripts_root / ALIASES_FILE
    shown = _shown(path, display_base)
    try:
        data = load_yaml(read_yaml_file(path)) if path.is_file() else None
    except (OSError, UnicodeDecodeError, YamlRefused):
        data = None
    entries = data.get("hooks") if isinstance(data, dict) else None
    if isinstance(entries, list):
        declarations += [Declaration(entry, shown, index) for index, entry in enumerate(entries)]
    elif entries is not None:
        issues.append(DiscoveryIssue(shown, "expected 'hooks:' to be a list of "
                                            "{name, job, args, auth}", code="hook.invalid"))
    for job in catalog.jobs:
        if not job.config.hooks:
            continue
        job_path = _shown(job.config_path, display_base)
        if job.source:
            issues.append(DiscoveryIssue(job_path, "hooks: ignored: only the workspace's own "
                                                   "configs declare hooks, not a source's",
                                         "warning", code="hook.source"))
            continue
        declarations += [Declaration(entry, job_path, index, job)
                         for index, entry in enumerate(job.config.hooks)]
    return declarations, issues


def _check_secrets(index: HookIndex, *, server: bool) -> None:
    for name, hook in list(index.hooks.items()):
        refs = [auth.secret for auth in (hook.auth.hmac, hook.auth.token) if auth is not None
                # Another process's environment is not the server's.
                and (server or auth.secret.kind == "file")]
        for ref in refs:
            problem = secret_problem(ref)
            if problem is not None:
                index.issues.append(DiscoveryIssue(
                    hook.declared_in, f"hook {name}: {problem}; the hook is not served until "
                                      "it can be read", code="hook.secret.unavailable"))
                index.hooks.pop(name, None)
            elif ref.kind == "file" and secret_exposed(ref):
                index.issues.append(DiscoveryIssue(
                    hook.declared_in, f"hook {name}: the secret file {ref.where} can be read "
                                      "by other users (chmod 600 it)", "warning",
                    code="hook.secret.exposed"))


def load_hooks(scripts_root: Path, workspace: Path, catalog: Catalog, *, dev: bool | None,
               display_base: Path | None = None) -> HookIndex:
    """The hooks of the workspace (see the module docstring); blocking."""
    declarations, issues = read_declarations(scripts_root, catalog,
                                             display_base=display_base or workspace)
    index = index_hooks(declarations, catalog, base=workspace, dev=dev)
    index.issues[:0] = issues
    _check_secrets(index, server=dev is not None)
    return index
