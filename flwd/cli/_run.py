"""``flwd JOB [flags]``: plan and run a job, streaming its output live.

Ctrl-C: the first press asks the run to cancel gracefully (TERM, grace, KILL;
journaled ``run.canceled``; exit 130), a second press kills at once.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import BinaryIO

import trio

from flwd.containers import detect_runtime
from flwd.engine import Engine, journal_refusal_sync, open_engine
from flwd.errors import FlwdError
from flwd.events import (
    POLICY_DECISION,
    RUN_CANCELED,
    RUN_FINISH,
    RUN_START,
    STEP_FINISH,
    STEP_LOG,
    STEP_START,
    EventRecord,
)
from flwd.jobs import Alias, Arg, Binding, Job, flag_help
from flwd.plan import Plan, build_plan, uses_container
from flwd.policy import Profile, decisions_of, load_policy, resolve_profile
from flwd.settings import Settings

from ._common import CommonFlags, split_common_flags
from ._context import CONTEXT, load_workspace, resolve_job
from ._render import Style, table, use_color
from ._secret_input import bind_job_command_line

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 130, 143


def job_help(job: Job, alias: Alias | None = None) -> str:
    summary = job.summary
    if alias is not None:
        summary = f"alias of {job.id}" + (f": {alias.description}" if alias.description else "")
    return help_text([alias.name] if alias else job.words, job.name, summary, job.config.args)


def help_text(words: Sequence[str], name: str, summary: str | None, args: Sequence[Arg]) -> str:
    """A job's ``--help`` (also built from a server's argspec in remote mode)."""
    lines = [f"usage: flwd {' '.join(words)} [FLAGS]", ""]
    lines.append(name + (f" — {summary}" if summary else ""))
    rows = [["  " + form, text] for form, text in flag_help(args)]
    lines += ["", "Arguments:", table(["", ""], rows).split("\n", 1)[1] if rows else "  (none)"]
    if any(arg.is_secret for arg in args):
        lines += ["", "A secret typed on the command line shows in ps and in the shell's history:",
                  "pass it with --NAME-file PATH or --NAME - (stdin). A missing required secret",
                  "is asked for, without echo, on a terminal."]
    lines += ["", "Common flags:", table(["", ""], [
        ["  --json", "print run events as NDJSON on stdout"],
        ["  --profile PROFILE", "security profile: secure (default), permissive, disabled"],
        ["  --debug", "show a traceback on internal errors"],
        ["  -h, --help", "show this help"],
    ]).split("\n", 1)[1]]
    lines += ["", f"Preview without running: flwd :plan {' '.join(words)} [FLAGS]"]
    return "\n".join(lines)


def prepare(tokens: Sequence[str], settings: Settings) -> tuple[Job, CommonFlags, Plan | None,
                                                                Alias | None]:
    """Resolve the job and bind its flags; ``Plan`` is None when only help was asked."""
    catalog, aliases = load_workspace(settings)
    job, rest, alias = resolve_job(catalog, tokens, settings, aliases)
    common, rest = split_common_flags(rest)
    if common.debug:
        CONTEXT.debug = True
    if common.help:
        return job, common, None, alias
    binding = bind_job_command_line(job.config.args, rest, job_id=job.id)
    warn_short_secrets(binding)
    profile = resolve_profile(requested=common.profile, requested_by="--profile",
                              environment=os.environ.get("FLWD_PROFILE"))
    plan = plan_with_policy(job, binding, settings, profile=profile, alias=alias,
                            journal_refusals=True)
    return job, common, plan, alias


#: Below this length a secret is likely to occur by chance in ordinary output, where
#: masking it (which flwd still does) mangles the text.
SHORT_SECRET = 4


def warn_short_secrets(binding: Binding) -> None:
    """One warning line per secret argument shorter than :data:`SHORT_SECRET` characters."""
    for name, value in binding.secrets.items():
        if len(value) < SHORT_SECRET:
            sys.stderr.write(
                f"flwd: warning: --{name} is shorter than {SHORT_SECRET} characters; every "
                "occurrence of it in the output is still masked as [secret]\n")


def plan_with_policy(job: Job, binding: Binding, settings: Settings, *, profile: Profile,
                     alias: Alias | None, journal_refusals: bool) -> Plan:
    """``build_plan`` with this host's policy bundle and container runtime.

    A container job fails fast (``container.runtime.unavailable``) when there is
    no runtime. With ``journal_refusals`` (a run, not a preview), the decisions
    of a refused request are journaled before the error propagates.
    """
    policy = load_policy(os.environ, settings.workspace)
    runtime = (detect_runtime() if uses_container(job.config.executor, job.config.interpreter)
               else None)
    try:
        return build_plan(job, binding, profile=profile, workspace=settings.workspace,
                          scripts_root=settings.scripts_root, alias=alias, policy=policy,
                          runtime=runtime)
    except FlwdError as exc:
        if journal_refusals and decisions_of(exc):
            journal_refusal_sync(settings.open_store(), job.id, profile, decisions_of(exc))
        raise


def run_job_command(tokens: Sequence[str]) -> int:
    settings = CONTEXT.settings()
    job, common, plan, alias = prepare(tokens, settings)
    if plan is None:
        print(job_help(job, alias))
        return EXIT_OK
    plan.require_runnable()
    return trio.run(_run, settings, plan, common)


def exit_status(status: str, canceled_by_sigterm: bool = False) -> int:
    """The CLI's exit status for a run that ended ``status`` (a live run and ``:logs --follow``)."""
    if status == "completed":
        return EXIT_OK
    if status == "canceled":
        return EXIT_SIGTERM if canceled_by_sigterm else EXIT_SIGINT
    return EXIT_FAILED


def logs_exit_status(output: _Output, status: str, *, follow: bool) -> int:
    """``:logs``: 0 once printed; with ``--follow``, the run's own exit status."""
    return exit_status(status, output.canceled_by_sigterm) if follow else EXIT_OK


class _Output:
    """Renders a run's events: raw output lines (human) or NDJSON (``--json``).

    ``prefix_steps``: tag output lines with their step (``[build] …``), as for
    ``composition: steps`` jobs; a ``run.start`` that names its composition sets it, so a
    replay (``:logs``) renders like the live run did. Lines go out in ``seq`` order: when
    the output switches between stdout and stderr, the other stream is flushed first, so a
    terminal showing both gets them interleaved as the job wrote them.
    """

    def __init__(self, as_json: bool, *, prefix_steps: bool = False) -> None:
        self.as_json = as_json
        self.prefix_steps = prefix_steps
        self.stdout: BinaryIO = sys.stdout.buffer
        self.stderr: BinaryIO = sys.stderr.buffer
        self.style = Style(use_color(sys.stderr))
        self.broken = False
        #: A CLI run canceled by SIGTERM (``flwd :cancel``) exits 143, not 130.
        self.canceled_by_sigterm = False
        self._last: BinaryIO | None = None
        #: A step that failed with an error (it could not start, it crashed) is shown
        #: when the next line is printed — unless that line is the run's last one with
        #: the same error, which then says it once, with the reason (a run's last line
        #: always carries its reason).
        self._held: tuple[str, str] | None = None

    def write(self, records: list[EventRecord]) -> None:
        for record in records:
            if record.type == RUN_START and "composition" in record.data:
                self.prefix_steps = record.data["composition"] == "steps"
            elif record.type == RUN_CANCELED:
                self.canceled_by_sigterm = (
                    record.data.get("by") == "cli"
                    and str(record.data.get("reason", "")).startswith("interrupted by SIGTERM"))
        if self.broken:
            return
        try:
            if self.as_json:
                self.stdout.write(b"".join(record.ndjson() for record in records))
                self.stdout.flush()
                return
            for record in records:
                if record.type == STEP_LOG and record.lines is not None:
                    stream = self.stdout if record.data.get("channel") == "stdout" else self.stderr
                    self._release()
                    self._switch(stream)
                    if self.prefix_steps:
                        tag = f"[{record.data.get('step')}] ".encode()
                        stream.write(b"".join(tag + line + b"\n" for line in record.line_list()))
                    else:
                        stream.write(record.lines + b"\n")
                elif record.type in (POLICY_DECISION, STEP_START, STEP_FINISH, RUN_CANCELED,
                                     RUN_FINISH):
                    self._status(record)
            self.stdout.flush()
            self.stderr.flush()
        except BrokenPipeError:
            self.broken = True
            # Point the fds at /dev/null so the interpreter's final flush is quiet.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)

    def _switch(self, stream: BinaryIO) -> None:
        if self._last is not None and self._last is not stream:
            self._last.flush()
        self._last = stream

    def _release(self, unless: object = None) -> None:
        held, self._held = self._held, None
        if held is not None and held[0] != unless:
            self._switch(self.stderr)
            self.stderr.write((held[1] + "\n").encode())

    def error(self, text: str) -> None:
        """One line on stderr (whatever the output mode)."""
        try:
            self._release()
            self.stderr.write((self.style.red(text) + "\n").encode())
            self.stderr.flush()
        except BrokenPipeError:
            pass

    def _status(self, record: EventRecord) -> None:
        data = record.data
        style = self.style
        text = None
        step = data.get("step")
        if record.type == POLICY_DECISION:
            # What policy allowed but wants seen (an unsigned image in permissive, an
            # override in disabled) is journaled and shown; plain "info" decisions are not.
            if data.get("level") == "warning":
                text = style.yellow(f"flwd: warning: policy: {data.get('reason')}")
        elif record.type == STEP_START:
            attempt, most = data.get("attempt", 1), data.get("max_attempts", 1)
            if isinstance(attempt, int) and attempt > 1:
                text = style.yellow(f"flwd: step {step}: attempt {attempt}/{most}")
        elif record.type == STEP_FINISH and data.get("status") == "failed":
            if data.get("error"):
                self._release()
                self._held = (str(data["error"]), style.red(f"flwd: step {step} failed: "
                                                            f"{data['error']}"))
                return
            text = style.red(f"flwd: step {step} failed with exit status {data.get('exit_code')}")
        elif record.type == STEP_FINISH and data.get("status") == "skipped":
            text = style.yellow(f"flwd: step {step} skipped: {data.get('reason', 'not run')}")
        elif record.type == RUN_CANCELED:
            text = style.yellow(f"flwd: canceling run {record.run_id}: {data.get('reason')}")
        elif record.type == RUN_FINISH:
            status = data.get("status", "?")
            self._release(unless=str(data.get("error")))
            if status != "completed" or style.enabled:
                detail = f": {data['error']}" if data.get("error") else ""
                text = f"flwd: run {record.run_id} {style.status(status)}{detail}"
        if text:
            self._release()
            self._switch(self.stderr)
            self.stderr.write((text + "\n").encode())


async def _watch_signals(engine: Engine, run_id: str, signals: AsyncIterator[int],
                         caught: list[int]) -> None:
    async for signum in signals:
        caught.append(signum)
        name = signal.Signals(signum).name
        force = len(caught) > 1
        reason = (f"killed by a second {name}" if force
                  else f"interrupted by {name}" + (" (Ctrl-C)" if signum == signal.SIGINT else ""))
        await engine.cancel_run(run_id, reason=reason, by="cli", force=force)


async def _run(settings: Settings, plan: Plan, common: CommonFlags) -> int:
    output = _Output(common.json, prefix_steps=plan.composition == "steps")
    status = "failed"
    finished = False
    caught: list[int] = []
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_engine(settings) as engine:
            run = await engine.start_run(plan)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_watch_signals, engine, run.id, signals, caught)
                async with aclosing(engine.events(run.id)) as stream:
                    async for records in stream:
                        output.write(records)
                        if output.broken and not caught:
                            caught.append(signal.SIGPIPE)
                            await engine.cancel_run(run.id, reason="output closed (broken pipe)",
                                                    by="cli")
                        if records[-1].type == RUN_FINISH:
                            status = records[-1].data.get("status", "failed")
                            finished = True
                nursery.cancel_scope.cancel(reason="run finished")
            if not finished:
                # The stream ended without run.finish: it could not be journaled.
                cause = engine.storage_error
                output.error(f"flwd: run {run.id} ended without a recorded result"
                             + (f": {cause.one_line()}" if cause is not None else ""))
    return exit_status(status, canceled_by_sigterm=bool(caught) and caught[0] == signal.SIGTERM)
