"""Request and response shapes of the HTTP API (pydantic; the OpenAPI document is built from them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceRef(_Strict):
    name: str = Field(min_length=1, max_length=128, description="A configured source's name")


class RunRequest(_Strict):
    """Body of ``POST /plans`` and ``POST /runs``. Unknown fields are refused."""

    job_id: str = Field(min_length=1, max_length=256, description="Job id, e.g. `demo`")
    args: dict[str, Any] = Field(default_factory=dict,
                                 description="Argument values by name (JSON types must match)")
    source: SourceRef | None = None
    # Any text: a name that is not a profile is refused as the policy refuses it
    # (422 E_POLICY), not as a malformed body (the reference's §8.4 step 8); the
    # contract lists the names that are accepted.
    requested_security_profile: Annotated[str | None, WithJsonSchema(
        {"anyOf": [{"type": "string", "enum": ["secure", "permissive", "disabled"]},
                   {"type": "null"}]})] = Field(
        default=None, max_length=64,
        description="secure, permissive or disabled (any other name: 422 E_POLICY)")


class CancelRequest(_Strict):
    """Optional body of ``POST /runs/{id}:cancel``."""

    reason: str | None = Field(default=None, min_length=1, max_length=200,
                               pattern=r"^[^\x00-\x1f\x7f]*$",
                               description="Why (one line; `run.canceled` shows it)")
    force: bool = Field(default=False, description="Kill the run's processes at once "
                                                   "(no TERM and grace)")


class ArgSchema(BaseModel):
    """One argument of a job, as ``flwd.jobs.Arg.to_json`` gives it (empty members left out):
    what a form for it needs. A secret (``secret: true``) never has a default."""

    name: str
    type: str
    description: str | None = None
    required: bool | None = None
    default: Any = None
    enum: list[Any] | None = None
    #: ``array``: its elements' type and their allowed values.
    items_type: str | None = None
    items_enum: list[Any] | None = None
    #: ``object``: its values' type.
    value_type: str | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    minLength: int | None = None  # the wire's spelling (as in YAML)
    maxLength: int | None = None
    pattern: str | None = None
    format: str | None = None
    secret: bool | None = None


class NextFire(BaseModel):
    """The soonest fire of a job's active schedules."""

    at: str = Field(description="On the schedule's zone's clock, with its offset (RFC 3339)")
    utc: str = Field(description="The same instant in UTC")
    timezone: str = Field(description="The schedule's IANA zone")
    schedule: str = Field(description="The schedule's name")


class JobSummary(BaseModel):
    """A job of ``GET /jobs``; an alias entry adds ``alias_of`` (the target job id) and
    has its target's path and args (an alias a source declares: ``source`` ``{name,
    type: "alias"}``, as the reference). ``GET /jobs/{id}`` of an alias adds ``alias``."""

    id: str
    name: str
    summary: str | None = None
    description: str | None = None
    path: str
    args: list[ArgSchema]
    source: dict[str, str] | None = None
    alias_of: str | None = None
    alias: dict[str, Any] | None = None
    next_fire: NextFire | None = Field(default=None, description="A job with schedules: "
                                       "when it runs next by itself (GET /schedules)")


class Run(BaseModel):
    id: str
    job_id: str
    status: Literal["queued", "running", "completed", "failed", "canceled", "interrupted"]
    created_at: str = Field(description="When the run was accepted (RFC 3339 UTC)")
    started_at: str | None = Field(description="When it began executing; null while it is "
                                               "queued (e.g. waiting for a concurrency slot)")
    finished_at: str | None = None
    exit_code: int | None = None
    error: str | None = None
    security_profile: str | None = None
    #: The absolute path of the folder holding the scripts/ of the run's job (null for
    #: runs of a flwd that did not record it).
    workspace: str | None
    executor: Literal["proc", "container"] | None = Field(
        description="How its steps run: `proc` (host processes) or `container`, as its plan's "
                    "`executor_preview.executor`; null for a run of an older flwd whose plan "
                    "did not say")
    runtime: Literal["podman", "docker"] | None = Field(
        default=None, description="The container runtime of a `container` run")
    result: dict[str, Any]
    provenance: dict[str, Any] | None = None
    trigger: dict[str, Any] | None = Field(default=None, description=(
        "What started it when no one asked: a schedule's fire ({kind: schedule, name, "
        "fire_at, catchup?, manual?}) or a webhook's delivery; absent otherwise"))


class StorageHealth(BaseModel):
    """``GET /health/storage``: the reference's keys first, then flwd's own."""

    driver: str = Field(description="The Core DB backend: `sqlite`")
    ok: bool = Field(description="The database can grow (`bytes_used < max_bytes`); "
                                 "when false the answer is a 503 storage-degraded problem")
    bytes_used: int = Field(description="Bytes its pages take (page_count × page_size, "
                                        "free pages included)")
    max_bytes: int = Field(description="The size it can reach: its pages plus the free "
                                       "space of the data dir's file system, within "
                                       "SQLite's page limit (`--max-db-mb` is retention's "
                                       "target, not a cap)")
    journal_bytes: int = Field(description="The event journal's payload: event data and "
                                           "output lines")
    journal_max_bytes: int = Field(description="What the journal may hold: `--max-db-mb` "
                                               "when set (retention evicts whole old runs, "
                                               "events and all, above it), else `max_bytes`")
    eviction_active: bool = Field(description="Retention is evicting runs: its last pass "
                                              "evicted some, or the database is over "
                                              "`--max-db-mb`")
    schema_version: int = Field(description="The Core DB's schema version, read from it")
    db_bytes: int
    wal_bytes: int
    used_bytes: int = Field(description="Bytes of the pages in use (what `--max-db-mb` is "
                                        "checked against)")
    runs: int
    events: int
    oldest_run_created_at: float | None = Field(description="Unix time")
    evicted_runs: int
    evicted_through_seq: int
    retention: dict[str, Any] | None = Field(description="retain_runs, retain_days, "
                                                         "max_db_mb; null: keep everything")
    last_gc: dict[str, Any] | None = None
    gc_errors: list[str] | None = None


class Event(BaseModel):
    seq: int
    run_id: str
    job_id: str
    type: str
    ts: str
    data: dict[str, Any]


class Problem(BaseModel):
    """RFC 7807 problem document (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    code: str
    errors: list[dict[str, str]] | None = None


class Plan(BaseModel):
    model_config = ConfigDict(extra="allow")

    job_id: str
    name: str
    effective_argspec: dict[str, Any]
    executor_preview: dict[str, Any] = Field(
        description="executor, interpreter, composition, runtime, container, container_image "
                    "(the image as the job names it); add-ons: resolved_digest, pull_policy, "
                    "runnable")
    requirements: dict[str, Any] | None = Field(
        default=None, description="add-on jobs: `{tools: [{name, version}], status: unknown}`")
    steps: list[dict[str, Any]] = Field(
        description="each: id, script, command, needs, container (DAG steps), "
                    "container_image and image_trust (container steps)")
    resolved_args: dict[str, Any]
    security_profile: str
    image_trust: dict[str, Any] | None = Field(
        default=None, description="`{image, mode, verified, reason}` of the job's one image, "
                                  "unless the verify mode is disabled")
    provenance: dict[str, Any]


#: Standard base64 (RFC 4648 §4, padded) of at most 8 KiB: 2730 groups of four
#: (8190 bytes), then at most one padded group (one or two bytes more).
KV_VALUE_PATTERN = (r"^(?:[A-Za-z0-9+/]{4}){0,2730}"
                    r"(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")


class KvPutRequest(_Strict):
    """``PUT /kv/{namespace}/{key}``: the value to store."""

    value: str = Field(pattern=KV_VALUE_PATTERN, max_length=10924,
                       description="The value's bytes in standard base64 (at most 8 KiB "
                                   "decoded); an empty string stores an empty value")


class KvEntry(BaseModel):
    key: str = Field(description="The key (UTF-8 text)")
    value: str = Field(description="The value's bytes, standard base64")
    timestamp: str = Field(description="When it was last put: RFC 3339, UTC, to the "
                                       "millisecond (trailing zeros trimmed)")


class KvPage(BaseModel):
    items: list[KvEntry] = Field(description="Entries in byte order of their keys")
    nextCursor: str | None = Field(  # camelCase: the reference names it so
        default=None, description="Present when more entries follow: pass it back as "
                                  "?cursor= (the base64 of the last key returned)")
