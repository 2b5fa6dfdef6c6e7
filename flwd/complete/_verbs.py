"""What completion knows about flwd itself: its verbs, global options and the flags
every job accepts.

These are static (they change with flwd, not with a workspace), so they live in
code rather than in the job index. ``tests/complete/test_resolver.py`` checks this
table against the cyclopts application, so a new verb cannot be forgotten here.

A flag is ``(name, description, values, repeatable)``: ``name`` without the
leading ``--``; ``values`` are the completions of its value (``BOOLEAN`` for a
boolean, :data:`JOB_IDS` for "a job id", :data:`PATHS` for "a file path", ``()`` for a
free value).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeAlias

    Flag: TypeAlias = tuple[str, str, tuple[str, ...], bool]
    #: A positional operand: its choices, :data:`JOB_OPERAND`, or ``()`` (free text).
    Operand: TypeAlias = tuple[str, ...]
    #: ``(description, flags, operands)``.
    Verb: TypeAlias = tuple[str, tuple[Flag, ...], tuple[Operand, ...]]

BOOLEAN = ("true", "false")
#: Values meaning "any job id of the workspace" (``:runs --job``).
JOB_IDS = ("\0jobs",)
#: An operand naming a job (``:plan JOB``): completed like a job on the command line.
JOB_OPERAND = ("\0job",)
#: Values meaning "a file path": the shell's own file completion takes over (the
#: candidate of type ``file``, see :mod:`._protocol`).
PATHS = ("\0paths",)

PROFILES = ("secure", "permissive", "disabled")
SHELLS = ("bash", "zsh", "fish", "powershell")
INIT_KINDS = ("bash", "sh", "python", "pwsh")
RUN_STATUSES = ("queued", "running", "completed", "failed", "canceled", "interrupted")
TOKEN_SCOPES = ("*", "events:read", "hooks:trigger", "jobs:read", "jobs:write", "metrics:read",
                "ruley:read", "ruley:write", "runs:read", "runs:write", "sources:read",
                "sources:write")

_JSON: Flag = ("json", "print JSON", BOOLEAN, False)

#: Options of flwd itself, before the command (see ``flwd --help``).
GLOBAL_FLAGS: tuple[Flag, ...] = (
    ("data-dir", "where the Core DB and run directories live", (), False),
    ("db", "the Core DB elsewhere: postgresql://USER@HOST/DB or a SQLite file", (), False),
    ("debug", "show tracebacks for internal errors", BOOLEAN, False),
    ("help", "show the usage", BOOLEAN, False),
    ("scripts", "the scripts directory (default: ./scripts, searched upwards)", (), False),
    ("server", "remote mode: talk to a running 'flwd :serve'", (), False),
    ("version", "print the version", BOOLEAN, False),
)

#: Flags every job invocation accepts besides its own (``flwd.cli._common``).
JOB_FLAGS: tuple[Flag, ...] = (
    ("debug", "show a traceback on internal errors", BOOLEAN, False),
    ("help", "show the job's flags", BOOLEAN, False),
    ("json", "print run events as NDJSON on stdout", BOOLEAN, False),
    ("profile", "security profile: secure (default), permissive, disabled", PROFILES, False),
)

#: Built-in verbs offered among the segments of the first word (never ``help``).
PLAIN_VERBS = ("completion", "init")

SOURCES_COMMANDS: dict[str, Verb] = {
    "add": ("register a source (or update one)", (
        ("allow-path", "another folder sources may come from (repeatable)", (), True),
        ("expose", "whether the source's aliases are shown", ("none", "read", "readwrite"),
         False),
        ("git-allow-host", "a host git sources may be cloned from (repeatable)", (), True),
        _JSON,
        ("name", "one word naming the source (its jobs are NAME/JOB)", (), False),
        ("pull-policy", "oci: pull the image now (on-add) or at runs (on-run)",
         ("on-add", "on-run"), False),
        ("ref", "local: the folder; git: a branch, tag or commit", (), False),
        ("schedules", "local, git: let the schedules of its jobs fire", BOOLEAN, False),
        ("trusted", "oci: opt in to running the image to read its manifest", BOOLEAN, False),
        ("type", "local (a folder), git (a repository) or oci (an add-on image)",
         ("local", "git", "oci"), False),
        ("url", "git: the repository; oci: the image", (), False),
        ("verify-signatures", "oci: refuse the image unless its signature verifies", BOOLEAN,
         False),
    ), ()),
    "list": ("list the sources", (_JSON,), ()),
    "refresh": ("resolve a source's ref again and re-index it", (_JSON,), ((),)),
    "remove": ("unregister a source", (), ((),)),
}

_TOKENS_FILE: Flag = ("tokens", "tokens file (default: DATA_DIR/tokens.json)", (), False)

TOKENS_COMMANDS: dict[str, Verb] = {
    "create": ("mint a token (printed once)", (
        ("expires", "when it stops working: 30d, 12h, or a time such as 2027-01-01T00:00:00Z",
         (), False),
        ("name", "a unique name for the token", (), False),
        ("scope", "a scope to grant (repeat the flag)", TOKEN_SCOPES, True),
        _TOKENS_FILE,
    ), ()),
    "import": ("copy a tokens file's tokens into the shared Core DB (--db)", (
        ("tokens", "tokens file to import (default: DATA_DIR/tokens.json)", (), False),
    ), ()),
    "list": ("list the tokens (never a token or its hash)", (_JSON, _TOKENS_FILE), ()),
    "revoke": ("remove a token (a running server refuses it at once)", (_TOKENS_FILE,),
               ((),)),
}

#: The namespaces a KV allows by default (``flwd.kv.DEFAULT_NAMESPACES``).
KV_NAMESPACES = ("core_invocation_state", "core_triggers")

KV_COMMANDS: dict[str, Verb] = {
    "delete": ("remove a key", (), (KV_NAMESPACES, ())),
    "get": ("print the value stored under a key", (_JSON,), (KV_NAMESPACES, ())),
    "list": ("list the keys of a namespace", (
        _JSON,
        ("limit", "at most this many keys", (), False),
        ("prefix", "only keys that start with this text", (), False),
    ), (KV_NAMESPACES,)),
    "put": ("store a value (the operand, or stdin) under a key", (),
            (KV_NAMESPACES, (), ())),
}

SCHEDULES_COMMANDS: dict[str, Verb] = {
    "list": ("list the schedules: next three fires on their zone's clock, last fire",
             (_JSON,), ()),
    "pause": ("pause a schedule (kept across restarts)", (_JSON,), ((),)),
    "resume": ("resume a paused schedule", (_JSON,), ((),)),
    "trigger": ("fire a schedule now, by hand (its output; its exit status)", (_JSON,),
                ((),)),
}

DB_COMMANDS: dict[str, Verb] = {
    "migrate": ("create the Core DB's schema or bring it up to date", (_JSON,), ()),
    "status": ("say which Core DB is used, its schema version, what it holds", (_JSON,), ()),
}

#: Verbs whose first operand is a subcommand with its own flags and operands.
SUBCOMMANDS: dict[str, dict[str, Verb]] = {
    ":db": DB_COMMANDS,
    ":kv": KV_COMMANDS,
    ":schedules": SCHEDULES_COMMANDS,
    ":sources": SOURCES_COMMANDS,
    ":tokens": TOKENS_COMMANDS,
}

VERBS: dict[str, Verb] = {
    ":jobs": ("list the jobs discovered under scripts/", (_JSON,), ()),
    ":plan": ("preview a run (secrets shown as [secret])",
              (_JSON, JOB_FLAGS[3]), (JOB_OPERAND,)),
    ":runs": ("list recent runs of this workspace, newest first", (
        ("all", "the runs of every workspace, with a WORKSPACE column", BOOLEAN, False),
        ("arg", "only runs whose argument NAME was VALUE (NAME=VALUE; repeatable)", (), True),
        ("job", "only runs of this job id", JOB_IDS, False),
        _JSON,
        ("limit", "how many runs to show (1-1000)", (), False),
        ("since", "only runs created at or after this RFC 3339 time", (), False),
        ("status", "only runs with this status", RUN_STATUSES, False),
        ("until", "only runs created before this RFC 3339 time", (), False),
    ), ()),
    ":logs": ("print a run's output (or its events with --json)", (
        ("follow", "keep printing new events until the run finishes", BOOLEAN, False),
        _JSON,
    ), ((),)),
    ":cancel": ("ask a running run to stop", (), ((),)),
    ":serve": ("serve the REST + SSE API (and the web UI) until SIGTERM/SIGINT", (
        ("aliases-public", "show alias metadata to every caller", BOOLEAN, False),
        ("allow-path", "a folder local and file:// git sources may use (repeatable)", (), True),
        ("bind", "HOST:PORT to listen on", (), False),
        ("dev", "development mode (the token dev-token gets every scope)", BOOLEAN, False),
        ("extension", "a flowd extension: export (accepted; changes nothing)", ("export",),
         True),
        ("git-allow-host", "a host git sources may be cloned from (repeatable)", (), True),
        ("kv-namespace", "a KV namespace as NAME[=LIMIT] (repeatable; replaces the default)",
         (), True),
        ("labels", "this replica's labels in a cluster (jobs' runs_on), comma-separated", (),
         True),
        ("log", "log format on stderr", ("text", "json"), False),
        ("max-concurrent-runs", "at most this many runs at once (others wait queued)", (),
         False),
        ("max-db-mb", "evict old finished runs while the Core DB is larger", (), False),
        ("max-streams", "at most this many open event streams (others get 503)", (), False),
        ("metrics", "serve GET /metrics", BOOLEAN, False),
        ("no-containers", "start without a container runtime", BOOLEAN, False),
        ("profile", "security profile (FLWD_PROFILE wins)", PROFILES, False),
        ("public-url", "the server's URL as others reach it (links in notifications)", (),
         False),
        ("retain-days", "evict finished runs older than this many days", (), False),
        ("retain-runs", "keep at most this many runs in the Core DB", (), False),
        ("session-ttl", "how long a browser session lasts at most (e.g. 12h)", (), False),
        ("tokens", "tokens file (default: DATA_DIR/tokens.json)", (), False),
        ("ui", "serve the web UI at / (--ui=false: off)", BOOLEAN, False),
        ("workers", "serve with this many processes (one port, one Core DB)", (), False),
    ), ()),
    ":gc": ("evict old finished runs from the Core DB", (
        ("dry-run", "only list what would be evicted", BOOLEAN, False),
        _JSON,
        ("max-db-mb", "evict the oldest finished runs while the DB is larger", (), False),
        ("retain-days", "evict finished runs older than this many days", (), False),
        ("retain-runs", "keep at most this many runs (the newest)", (), False),
    ), ()),
    ":sources": ("manage job sources (local folders, git repositories, OCI add-ons)", (),
                 (tuple(sorted(SOURCES_COMMANDS)),)),
    ":tokens": ("manage API tokens", (), (tuple(sorted(TOKENS_COMMANDS)),)),
    ":db": ("the Core DB's schema: migrate it, or say where it is", (),
            (tuple(sorted(DB_COMMANDS)),)),
    ":kv": ("read and write the Rule-Y KV (values jobs keep between runs)", (),
            (tuple(sorted(KV_COMMANDS)),)),
    ":schedules": ("list, pause, resume or fire the jobs' schedules", (_JSON,),
                   (tuple(sorted(SCHEDULES_COMMANDS)),)),
    "completion": ("print a shell completion script", (), (SHELLS,)),
    "init": ("scaffold a job under scripts/", (
        ("force", "overwrite an existing job's files", BOOLEAN, False),
    ), (INIT_KINDS, ())),
}
