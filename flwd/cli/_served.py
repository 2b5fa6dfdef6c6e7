"""A thin client's ``flwd JOB …``, resolved, bound and planned by ``flwd :serve`` exactly as
the CLI does it in its own process (:func:`flwd.cli._run.run_job` with a local backend).

The server runs this code in place of the client's: the same job resolution (aliases,
a broken config named), the same common flags, the same ``--help``, the same binding
and warnings, the same planning — with the client's environment (its profile, policy
and runtime variables) — and the same one-line errors with their exit statuses. What
only the client's process can do as the command line means it — reading a secret from
a file, standard input or its terminal, a traceback with ``--debug``, notifications
(their sinks' variables are the client's, and it waits for the delivery) — makes the
command line :class:`~flwd.http.Declined`: the client runs it itself. So does anything
of the server that a local run would not share: another workspace, or a ``FLWD_*``
variable the engine reads while running that differs from the client's.

The verbs ``:jobs``, ``:plan``, ``:runs``, ``:logs`` and ``:cancel`` (in the forms
:func:`flwd.thin.parse_verb` takes) are answered the same way: by the CLI's own code — a
:class:`~flwd.cli._local.LocalBackend` on the client's workspace and this data dir, and
:mod:`flwd.cli._verb_output` — with the client's environment and colours; ``:logs``
hands the run's events from the journal to the client, which renders them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

import trio

from flwd.engine import Engine
from flwd.errors import FlwdError
from flwd.http import Answered, CommandLine, Declined, Ready, Replay
from flwd.jobs import Alias, Job, NotifyRule
from flwd.notify import WorkspaceRules
from flwd.settings import Settings, resolve_grace
from flwd.thin import VerbLine, parse_verb

from . import error_report
from ._common import split_common_flags
from ._context import Context, resolve_job
from ._local import LocalBackend, LocalTarget
from ._render import help_text
from ._run import short_secret_warnings
from ._secret_input import bind_without_input
from ._verb_output import (
    RUNS_LIMIT,
    Printed,
    cancel_printed,
    jobs_printed,
    plan_printed,
    runs_printed,
    runs_where,
)

#: ``FLWD_*`` variables the server need not share with the client: where the client
#: found its workspace and data dir (checked otherwise), remote mode, this switch, what
#: flwd sets in a run's own environment (a job calling flwd), what only ``:serve``
#: reads — and what the run takes from the client's environment itself: the planning's
#: (profile, policy bundle, images and their signatures, container runtime) and the
#: grace. Every other one (containment, KV namespaces, and any added later) must be the
#: same for both, or the command line runs in the client.
IRRELEVANT = frozenset({
    "FLWD_SCRIPTS", "FLWD_DATA_DIR", "FLWD_SERVER", "FLWD_TOKEN", "FLWD_LOCAL",
    "FLWD_RUN_ID", "FLWD_RUN_DIR", "FLWD_JOB_ID", "FLWD_JOB_DIR", "FLWD_STEP",
    "FLWD_STEP_KEY", "FLWD_ARGS_JSON", "FLWD_NOTIFY_EVENT", "FLWD_NOTIFY_DELIVERY",
    "FLWD_UI", "FLWD_EXTENSIONS", "FLWD_PUBLIC_URL", "FLWD_ALIASES_PUBLIC",
    "FLWD_TCP_USER_TIMEOUT_MS", "FLWD_ALLOW_PATHS", "FLWD_GIT_ALLOW_HOSTS",
    "FLWD_PROFILE", "FLWD_POLICY_FILE", "FLWD_POLICY_PUBKEY", "FLWD_IMAGE_MAP",
    "FLWD_IMAGE_PUBKEY", "FLWD_COSIGN_IDENTITY", "FLWD_COSIGN_OIDC_ISSUER",
    "FLWD_CONTAINER_RUNTIME", "FLWD_GRACE",
    # Compared with the server's Core DB itself, which --db may have named (prepare).
    "FLWD_DB",
})


def differing_variable(client: Mapping[str, str], server: Mapping[str, str]) -> str | None:
    """The first ``FLWD_*`` variable (by name) that matters to a run and differs between
    the client's environment and the server's, else None."""
    names = {name for name in (*client, *server)
             if name.startswith("FLWD_") and name not in IRRELEVANT}
    for name in sorted(names):
        if client.get(name) != server.get(name):
            return name
    return None


def same_folder(given: str, served: Path) -> bool:
    """``given`` names the folder ``served`` is (symlinks resolved)."""
    try:
        return os.path.samefile(given, served)
    except OSError:
        return False


class ServedCommandLines:
    """The :class:`~flwd.http.CommandLines` of ``flwd :serve``."""

    def __init__(self) -> None:
        self._workspace_rules: WorkspaceRules | None = None

    def _notifies(self, scripts_root: Path, job_id: str, rules: Sequence[NotifyRule]) -> bool:
        """A run of ``job_id`` would notify (its rules, or ``flwd.yaml``'s): a local run
        reads the sinks' variables from its own environment and waits for the delivery
        before it exits, which only the client's process can do."""
        if self._workspace_rules is None or self._workspace_rules.root != scripts_root:
            self._workspace_rules = WorkspaceRules(scripts_root)
        return any(rule.applies_to(job_id)
                   for rule in (*rules, *self._workspace_rules.current()))

    async def prepare(self, engine: Engine, line: CommandLine
                      ) -> Declined | Answered | Ready | Replay:
        """See :class:`~flwd.http.CommandLines`.

        **Cancellation:** leaves nothing behind but a journaled refusal (a plan being
        made in its thread finishes there).
        """
        settings = engine.settings
        if not same_folder(line.scripts_root, settings.scripts_root):
            return Declined(f"the server serves {settings.scripts_root}")
        variable = differing_variable(line.env, os.environ)
        if variable is not None:
            return Declined(f"{variable} is not the server's")
        if (line.env.get("FLWD_DB") or None) != settings.db:
            return Declined("the server's Core DB is not the command line's")
        if line.words and line.words[0].startswith(":"):
            verb = parse_verb(line.words)
            if verb is None:
                return Declined("the CLI reads this command line itself")
            return await _answer_verb(engine, line, verb)
        # Every config written before the command line ran is seen, as a local run sees it:
        # the job found in the catalog of the last check, if its own files (a few stats)
        # are as that check saw them, else after a check begun now (a walk of the whole
        # tree: 160 ms at 1,001 jobs).
        arrived = trio.current_time()
        found = await _current_job(engine, line.words, settings)
        output: list[tuple[str, str]] = []
        try:
            if found is None:
                catalog = await engine.catalog(fresh_since=arrived)
                aliases = await engine.aliases(fresh_since=arrived)
                found = resolve_job(catalog, line.words, settings, aliases)
            job, rest, alias = found
            common, rest = split_common_flags(rest)
            if common.debug:
                return Declined("--debug shows tracebacks of this process")
            target = LocalTarget(settings, job, alias, rest)
            args = target.args()
            if common.help:
                text = help_text(target.words, target.name, target.summary, args)
                return Answered([("stdout", text + "\n")], 0)
            if self._notifies(settings.scripts_root, job.id, job.notify_rules):
                return Declined("its runs notify: from the client's environment, and the "
                                "command waits for the delivery")
            bound = bind_without_input(args, rest, job_id=job.id, can_prompt=line.can_prompt)
            if bound is None:
                return Declined("a secret is read from a file, standard input or the terminal")
            binding, warnings = bound
            output += [("stderr", text) for text in warnings + short_secret_warnings(binding)]
            # A thread: the policy bundle is read, a refusal journaled, a runtime probed.
            plan = await trio.to_thread.run_sync(partial(
                target.plan_run, binding, common.profile, line.env))
            grace = resolve_grace(line.env)
        except FlwdError as exc:
            text, code = error_report(exc)
            return Answered([*output, ("stderr", text)], code)
        # It runs as it would in the client's process: its host steps start with the
        # client's environment, and a cancel waits the client's grace.
        return Ready(output, replace(plan, host_env=dict(line.env), grace=grace), common.json)


async def _current_job(engine: Engine, words: Sequence[str], settings: Settings
                       ) -> tuple[Job, list[str], Alias | None] | None:
    """What ``words`` name in the cached catalog, if the job's files are unchanged since
    (``Engine.job_unchanged``); None: a fresh check must say (no catalog yet, no such job,
    a job of a source, any doubt).

    **Cancellation:** nothing is left behind.
    """
    catalog = await engine.catalog(cached=True)
    aliases = await engine.aliases(cached=True)
    try:
        found = resolve_job(catalog, words, settings, aliases)
    except FlwdError:
        return None
    return found if engine.job_unchanged(found[0]) else None


async def _answer_verb(engine: Engine, line: CommandLine, verb: VerbLine
                       ) -> Declined | Answered | Replay:
    """``flwd :VERB …`` of a thin client, answered by the CLI's own code with the client's
    workspace, on this server's data dir (a :class:`LocalBackend`, as the CLI's process
    would use).

    **Cancellation:** ``:logs`` leaves nothing behind; the other verbs finish in their
    thread (they only read, but ``:cancel``, which asks for the cancel first).
    """
    if verb.verb == ":jobs" and line.env.get("TZ") != os.environ.get("TZ"):
        return Declined("TZ is not the server's (the next fires are shown in its zone)")
    # The server's Core DB, which is the command line's (prepare checked it).
    backend = LocalBackend(Context(scripts=line.scripts_root,
                                   data_dir=str(engine.settings.data_dir),
                                   db=engine.settings.db))
    if verb.verb == ":logs":
        try:
            run, events = await backend.open_events(verb.positional[0],
                                                    follow=verb.flag("--follow"))
        except FlwdError as exc:
            text, code = error_report(exc)
            return Answered([("stderr", text)], code)
        return Replay([], run.id, run.status, verb.flag("--json"), verb.flag("--follow"),
                      events)
    # Blocking work (discovery, the Core DB, a cancel through this server's own socket):
    # in a thread, in a trio run of its own, as the CLI's process runs it.
    return await trio.to_thread.run_sync(partial(trio.run, _verb_output, backend, line, verb))


async def _verb_output(backend: LocalBackend, line: CommandLine, verb: VerbLine
                       ) -> Declined | Answered:
    """What the verb prints and its exit status (as :mod:`flwd.cli._app`'s verbs).

    **Cancellation:** no checkpoint.
    """
    printed = Printed()
    try:
        if verb.verb == ":jobs":
            as_json = verb.flag("--json")
            warnings: list[str] = []
            jobs = await backend.list_jobs(report_problems=not as_json, warnings=warnings)
            for text in warnings:
                printed.err(text)
            printed.pieces += jobs_printed(jobs, as_json=as_json).pieces
        elif verb.verb == ":plan":
            target = await backend.find_job(verb.positional)
            common, rest = split_common_flags(target.rest)
            bound = bind_without_input(target.args(), rest, job_id=target.job_id,
                                       can_prompt=line.can_prompt)
            if bound is None:
                return Declined("a secret is read from a file, standard input or the terminal")
            binding, warnings = bound
            for text in warnings:
                printed.err(text)
            plan = await target.plan(binding, common.profile, line.env)
            printed.pieces += plan_printed(plan, as_json=common.json, color=line.color).pieces
        elif verb.verb == ":runs":
            limit = int(verb.value("--limit") or RUNS_LIMIT)
            where = runs_where(job=verb.value("--job"), status=verb.value("--status"),
                               arg=verb.options.get("--arg"), since=verb.value("--since"),
                               until=verb.value("--until"), limit=limit)
            every = verb.flag("--all")
            runs = await backend.list_runs(where, limit=limit, every=every)
            printed.pieces += runs_printed(runs, as_json=verb.flag("--json"), every=every,
                                           color=line.color).pieces
        else:
            answer = await backend.cancel(verb.positional[0])
            printed.pieces += cancel_printed(answer).pieces
    except FlwdError as exc:
        text, code = error_report(exc)
        printed.err(text)
        return Answered(printed.pieces, code)
    return Answered(printed.pieces, 0)
