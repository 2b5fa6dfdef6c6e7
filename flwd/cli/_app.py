"""The cyclopts application: flwd's ``:verbs`` and built-in commands.

Job invocations (``flwd demo --name x``) do not go through cyclopts: their
flags come from each job's argspec, and skipping the generic parser keeps the
most common command lean (see ``flwd.cli.main``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Literal

from cyclopts import App, Parameter

from flwd import __version__
from flwd.engine import recover
from flwd.errors import UsageError
from flwd.store import RetentionPolicy
from flwd.tokens import parse_duration

from ._backend import EXIT_OK, exit_status
from ._common import split_common_flags
from ._context import CONTEXT
from ._db import db_app
from ._help import VerbHelp
from ._init import KINDS, job_parts, missing_interpreter, scaffold
from ._kv import kv_app
from ._mode import open_backend
from ._render import RunOutput, dumps, use_color
from ._schedules import schedules_app
from ._secret_input import bind_job_command_line
from ._sources import sources_app
from ._tokens import tokens_app
from ._verb_output import (
    RUNS_LIMIT,
    cancel_printed,
    jobs_printed,
    plan_printed,
    runs_printed,
    runs_where,
)

Tokens = Annotated[str, Parameter(allow_leading_hyphen=True)]

app = App(
    name="flwd",
    backend="trio",
    version=__version__,
    help_formatter=VerbHelp(),
    # No generated --no-X / --empty-X flags: a flag is only shown if it is meant to be
    # used (the few worth negating say so with their own Parameter(negative=...)).
    default_parameter=Parameter(negative=()),
    help="flwd (\"flowed\"): discover, plan and run the scripts you keep around.\n\n"
         "Run a job with `flwd JOB [FLAGS]` (e.g. `flwd demo --name alice`); "
         "`flwd JOB --help` lists its flags.",
)


@app.command(name=":jobs")
async def jobs_command(*, json: bool = False) -> int:
    """List the jobs discovered under scripts/**/config.d/config.yaml.

    Parameters
    ----------
    json
        Print {jobs, aliases, alias_collisions, alias_invalid, errors, warnings} as JSON.
    """
    async with open_backend() as backend:
        listing = await backend.list_jobs(report_problems=not json)
    jobs_printed(listing, as_json=json).emit()
    return 0


@app.command(name=":plan")
async def plan_command(*tokens: Tokens) -> int:
    """Preview what `flwd JOB [FLAGS]` would do, without running it.

    Accepts the job's own flags plus --json and --profile P. Secrets show as [secret].
    The arguments are checked exactly as for a run (and as `POST /plans` checks them): a
    missing required argument is an error, exit status 2.
    """
    if not tokens:
        raise UsageError(":plan needs a job", hint="e.g. 'flwd :plan demo --name alice'")
    async with open_backend() as backend:
        target = await backend.find_job(tokens)
        common, rest = split_common_flags(target.rest)
        job_id = target.job_id
        binding = bind_job_command_line(target.args(), rest, job_id=job_id)
        plan = await target.plan(binding, common.profile)
    plan_printed(plan, as_json=common.json, color=use_color(sys.stdout)).emit()
    return 0


Status = Literal["queued", "running", "completed", "failed", "canceled", "interrupted"]


@app.command(name=":runs")
async def runs_command(*, job: str | None = None, status: Status | None = None,
                       arg: list[str] | None = None, since: str | None = None,
                       until: str | None = None,
                       limit: int = RUNS_LIMIT, every: Annotated[bool, Parameter(name="--all")] = False,
                       json: bool = False) -> int:
    """List recent runs of this workspace from the Core DB, newest first.

    Parameters
    ----------
    job
        Only runs of this job id.
    status
        Only runs with this status.
    arg
        NAME=VALUE: only runs whose argument NAME was VALUE, written as on the command
        line (an array: one of its elements; an object: KEY=VALUE one of its entries).
        Repeatable (all must hold). Secret arguments are never stored: never matched.
    since
        Only runs created at or after this RFC 3339 time (e.g. 2026-11-24T08:00:00Z).
    until
        Only runs created before this RFC 3339 time.
    limit
        How many runs to show (1-1000).
    every
        The runs of every workspace sharing the data dir, with a WORKSPACE column. With
        --server, the server's runs are all listed anyway; --all adds the column.
    json
        Print the runs as a JSON array (each with its `workspace`).
    """
    where = runs_where(job=job, status=status, arg=arg, since=since, until=until, limit=limit)
    async with open_backend() as backend:
        listing = await backend.list_runs(where, limit=limit, every=every)
    runs_printed(listing, as_json=json, every=every, color=use_color(sys.stdout)).emit()
    return 0


@app.command(name=":logs")
async def logs_command(run: str, /, *, follow: bool = False, json: bool = False) -> int:
    """Print a run's output (or its events with --json) from the journal, as the run printed it.

    With --follow, wait for the run to end and exit like the run did (0 completed,
    1 failed, 130 or 143 canceled); without it, exit 0 once the output is printed.

    Parameters
    ----------
    run
        Run id, a unique prefix of it, or `last` (the last run of this workspace; with
        --server, the server's last run).
    follow
        Keep printing new events until the run finishes.
    json
        Print every event as NDJSON.
    """
    output = RunOutput(json)
    async with open_backend() as backend:
        final = await backend.show_events(run, output.write, follow=follow)
    # Without --follow, 0 once printed; with it, the run's own exit status.
    return exit_status(final, output.canceled_by_sigterm) if follow else EXIT_OK


@app.command(name=":cancel")
async def cancel_command(run: str, /) -> int:
    """Ask a running run to stop (TERM, grace, KILL; the run ends `canceled`).

    Parameters
    ----------
    run
        Run id, a unique prefix of it, or `last`.
    """
    async with open_backend() as backend:
        answer = await backend.cancel(run)
    cancel_printed(answer).emit()
    return 0


LogFormat = Literal["text", "json"]


@app.command(name=":serve")
async def serve_command(*, bind: str = "127.0.0.1:8080", profile: str | None = None,
                        dev: bool = False, log: LogFormat = "text",
                        metrics: Annotated[bool, Parameter(negative="--no-metrics")] = True,
                        aliases_public: bool = False, tokens: str | None = None,
                        no_containers: bool = False,
                        allow_path: list[str] | None = None,
                        git_allow_host: list[str] | None = None,
                        retain_runs: int | None = None, retain_days: float | None = None,
                        max_db_mb: float | None = None,
                        max_concurrent_runs: int | None = None, max_streams: int = 128,
                        kv_namespace: list[str] | None = None, ui: bool | None = None,
                        extension: list[str] | None = None, session_ttl: str = "12h",
                        public_url: str | None = None,
                        labels: list[str] | None = None, workers: int = 1) -> int:
    """Serve the REST + SSE API (and the web UI at /) until SIGTERM/SIGINT.

    One server per data dir: it owns the data dir's sources while it runs (local
    `:sources add|remove|refresh` are refused and name the --server command to use).
    Its Core DB is the data dir's, or the one `--db URL` names (before or after
    `:serve`; also FLWD_DB): postgresql://USER@HOST/DATABASE, the password in
    PGPASSWORD, ~/.pgpass or FLWD_DB (never on the command line; docs/scale-out.md).

    Parameters
    ----------
    bind
        HOST:PORT to listen on (port 0 picks a free one; the URL is logged).
    profile
        Security profile: secure (default), permissive, disabled. FLWD_PROFILE wins.
    dev
        Development mode: the token `dev-token` (and no token) get every scope; only
        loopback origins (CORS) and Host names are served. Refused on non-loopback binds.
    log
        Log format on stderr: text or json (one object per line).
    metrics
        Serve GET /metrics (unauthenticated on loopback binds only).
    aliases_public
        Show alias metadata to every caller (also FLWD_ALIASES_PUBLIC).
    tokens
        Tokens file (default: DATA_DIR/tokens.json; manage it with `flwd :tokens`). It is
        reloaded when it changes: revoked tokens are refused, new ones accepted, at once.
    no_containers
        Start without a container runtime (container jobs will be refused).
    allow_path
        A folder local and file:// git sources may use besides the scripts root
        (repeatable; also FLWD_ALLOW_PATHS, separated by ':').
    git_allow_host
        A host git sources may be cloned from (repeatable; also FLWD_GIT_ALLOW_HOSTS).
    retain_runs
        Keep at most this many runs in the Core DB (whole finished runs are evicted,
        oldest first; checked at start and every minute).
    retain_days
        Evict finished runs older than this many days.
    max_db_mb
        Evict the oldest finished runs while the Core DB uses more than this many MB.
    max_concurrent_runs
        At most this many runs execute at once; the others wait `queued` (in order).
        A job's own `concurrency:` limits it further.
    max_streams
        At most this many event streams (SSE, NDJSON, WebSocket) are open at once; one
        more is refused with 503 and Retry-After (each costs ~0.5 MB while it replays).
    kv_namespace
        A namespace of the Rule-Y KV (/kv, `flwd :kv`) as NAME or NAME=LIMIT (bytes, or
        with KiB, MiB, GiB; default 32MiB); repeatable. Given, the list replaces the
        default core_triggers and core_invocation_state (also FLWD_KV_NAMESPACES,
        comma-separated). Jobs get it in FLWD_KV_NAMESPACES.
    ui
        Serve the web UI at / (default; also FLWD_UI). --ui=false leaves it out: / and
        /ui/ answer 404, the API is unchanged.
    extension
        A flowd extension to enable (repeatable or comma-separated; also FLWD_EXTENSIONS).
        Accepted for flowd's command lines: the only one, `export`, changes nothing
        (GET /runs/{id}/events.ndjson is always served); an unknown name refuses the start.
    session_ttl
        How long a browser session lasts at most (POST /session trades a token for a
        cookie), e.g. 12h, 30m, 7d; never past its token's expiry, and revoking the
        token ends it at once.
    public_url
        The URL people reach this server at (behind a proxy, say), for the links to runs
        in notifications and the web UI's webhook addresses (also FLWD_PUBLIC_URL); default
        the address it is bound to.
    labels
        This replica's labels in a cluster: it claims only the runs of jobs whose
        `runs_on` it has (comma-separated or repeatable; also FLWD_LABELS).
    workers
        Serve with this many processes sharing the port and Core DB, e.g. one per CPU
        core (docs/operations.md#several-workers).
    """
    from flwd.engine import cluster_settings
    from flwd.http import ServeConfig, parse_extensions, serve_any  # Quart, Hypercorn: :serve
    from flwd.kv import KvNamespaces

    from ._served import ServedCommandLines

    parse_extensions(extension, os.environ)  # flowd's switches: checked, nothing to turn on
    if max_concurrent_runs is not None and max_concurrent_runs < 1:
        raise UsageError(f"--max-concurrent-runs must be at least 1 (got {max_concurrent_runs})")
    if max_streams < 1:
        raise UsageError(f"--max-streams must be at least 1 (got {max_streams})")
    ttl = parse_duration(session_ttl)
    if not ttl:
        raise UsageError(f"invalid --session-ttl {session_ttl[:40]!r}",
                         hint="use a duration such as 12h, 30m, 7d or 1d12h (units s, m, h, "
                              "d, w), more than zero")
    namespaces = KvNamespaces.parse(kv_namespace) if kv_namespace else None
    settings = CONTEXT.settings()
    public = aliases_public or os.environ.get("FLWD_ALIASES_PUBLIC", "").lower() in (
        "1", "true", "yes", "on")
    await serve_any(settings, ServeConfig(
        bind=bind, dev=dev, profile=profile, log=log, metrics=metrics, aliases_public=public,
        tokens=Path(tokens) if tokens else None, no_containers=no_containers,
        allow_paths=tuple(allow_path or ()), git_allow_hosts=tuple(git_allow_host or ()),
        retention=RetentionPolicy(retain_runs, retain_days, max_db_mb),
        max_concurrent_runs=max_concurrent_runs, max_streams=max_streams,
        kv_namespaces=namespaces, ui=_ui_enabled(ui), session_ttl=ttl,
        public_url=public_url or os.environ.get("FLWD_PUBLIC_URL") or None,
        command_lines=ServedCommandLines(),
        cluster=cluster_settings(labels, os.environ)), workers)
    return 0


def _ui_enabled(flag: bool | None) -> bool:
    """--ui, else FLWD_UI (1/true/yes/on or 0/false/no/off), else on."""
    if flag is not None:
        return flag
    text = os.environ.get("FLWD_UI", "").strip().lower()
    if text in ("", "1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"FLWD_UI={os.environ['FLWD_UI']!r} is not a boolean",
                     hint="use FLWD_UI=false (or true), or --ui=false")


@app.command(name=":gc")
def gc_command(*, retain_runs: int | None = None, retain_days: float | None = None,
               max_db_mb: float | None = None, dry_run: bool = False,
               json: bool = False) -> int:
    """Evict old finished runs (whole: row, events, run dir) from the local Core DB.

    Safe while a server or other runs use the data dir: runs not finished are never
    evicted, and each batch is one short transaction.

    Parameters
    ----------
    retain_runs
        Keep at most this many runs (the newest).
    retain_days
        Evict finished runs older than this many days.
    max_db_mb
        Evict the oldest finished runs while the DB uses more than this many MB.
    dry_run
        Only list what would be evicted (count and age limits).
    json
        Print the result as JSON (with storage usage).
    """
    policy = RetentionPolicy(retain_runs, retain_days, max_db_mb)
    if not policy.active:
        raise UsageError("say what to keep: --retain-runs N, --retain-days D or --max-db-mb M",
                         hint="e.g. 'flwd :gc --retain-runs 1000'")
    settings = CONTEXT.settings(require_scripts=False)
    store = settings.open_store()
    if not store.exists():
        raise UsageError(f"no runs yet (no Core DB at {store.location})")
    recover(settings)  # runs of dead processes are finished (interrupted) first
    result = store.collect(policy, runs_dir=settings.runs_dir, dry_run=dry_run)
    usage = store.storage_usage()
    if json:
        print(dumps({**result.to_json(), "storage": usage}))
        return 0
    verb = "would evict" if dry_run else "evicted"
    print(f"{verb} {len(result.evicted)} run{'s' if len(result.evicted) != 1 else ''}"
          + ("" if dry_run else f" ({result.events_deleted} events); "
             f"{usage['runs']} runs kept, {usage['used_bytes'] / 1e6:.1f} MB in use"))
    return 0


app.command(sources_app)

app.command(tokens_app)

app.command(kv_app)
app.command(schedules_app)
app.command(db_app)


@app.command(name="init")
def init_command(kind: str, path: str, /, *, force: bool = False) -> int:
    """Scaffold a job under scripts/: `flwd init bash tools/hello`.

    Parameters
    ----------
    kind
        Script kind: bash, sh, python or pwsh (also `ps`, flowd's name for it).
    path
        Job path under scripts/ (words separated by '/' or '.').
    force
        Overwrite an existing job's files.
    """
    settings = CONTEXT.settings(require_scripts=False)
    settings.scripts_root.mkdir(parents=True, exist_ok=True)
    written = scaffold(settings.scripts_root, kind, path, force=force)
    for file in written:
        print(f"created {file.relative_to(settings.workspace)}")
    if (command := missing_interpreter(kind)) is not None:
        sys.stderr.write(f"flwd: warning: '{command}' is not on PATH: install it before running "
                         "this job (or set 'interpreter:' in its config.d/config.yaml)\n")
    print(f"run it with: flwd {' '.join(job_parts(settings.scripts_root, path))}")
    return 0


__all__ = ["KINDS", "app"]
