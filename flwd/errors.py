"""Domain errors of flwd, and the one table that maps them to problems.

Every error a user can cause or meet is a subclass of :class:`FlwdError`. The
exception names the *state* (``JobNotFound``, ``ArgsInvalid``); the table
:data:`PROBLEMS` gives, in one place, how that state is reported: the RFC 7807
``status``/``title``/``code`` over HTTP, and the exit status on the CLI.

Nothing here imports trio or any I/O library: the CLI completion fast path and
sans-IO modules may import it freely.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class FlwdError(Exception):
    """Base of every error flwd reports to a user.

    Args:
        detail: one human sentence naming what is wrong (and where).
        hint: how to fix it, when there is something to say.
        errors: per-field problems, ``[{"arg": name, "message": text}]``.
        extensions: extra members of the problem document (``alias``, ``source`` …).
    """

    def __init__(
        self,
        detail: str,
        *,
        hint: str | None = None,
        errors: list[dict[str, str]] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.hint = hint
        self.errors = errors or []
        self.extensions = extensions

    @property
    def problem(self) -> ProblemSpec:
        for cls in type(self).__mro__:
            spec = PROBLEMS.get(cls)
            if spec is not None:
                return spec
        raise AssertionError("FlwdError itself is in PROBLEMS")  # pragma: no cover

    #: How a field is shown in per-field lines: ``--name`` for job flags.
    field_prefix = ""

    def one_line(self) -> str:
        """The CLI error line: the problem and the fix, no trailing newline."""
        # Details and hints may quote user input (a key, a value) holding line breaks.
        text = " ".join(self.detail.split("\n"))
        if not self.hint:
            return text
        hint = " ".join(self.hint.split("\n"))
        return f"{text} ({hint})"

    def field_lines(self) -> list[str]:
        """Every failing field after the first (the first is in :meth:`one_line`)."""
        lines = []
        for error in self.errors[1:]:
            field = f"{self.field_prefix}{error['arg']}: " if error.get("arg") else ""
            lines.append(f"{field}{error['message']}")
        return lines


class UsageError(FlwdError):
    """The command line itself is wrong (unknown verb, missing operand, bad flag)."""


class JobNotFound(FlwdError):
    """No job (or alias) has the requested id."""


class ArgsInvalid(FlwdError):
    """Job arguments failed validation; ``errors`` lists every failing field."""

    field_prefix = "--"


class ConfigInvalid(FlwdError):
    """A job's ``config.d/config.yaml`` cannot be used."""


class MixedExecutors(FlwdError):
    """A ``composition: steps`` job a step of which sets ``executor``: the job's executor
    runs every step (the job is listed; planning it is refused)."""


class ConfigTooLarge(ConfigInvalid):
    """A YAML document is over a limit of ``flwd.jobs.YamlLimits`` (its size, its
    expansion through aliases, its depth)."""


class JobIdDuplicate(FlwdError):
    """Several configs claim one job id: none of them runs under it (``paths`` names them)."""


class RunNotFound(FlwdError):
    """No run with that id is known to the Core DB."""


class PolicyDenied(FlwdError):
    """The active security profile / policy bundle refuses what the job asks for."""


class ProfileInvalid(FlwdError):
    """A security profile name is not ``secure``, ``permissive`` or ``disabled``."""


class StorageError(FlwdError):
    """The Core DB cannot be opened, migrated or written."""


class StorageFull(StorageError):
    """The Core DB refused a write for lack of room: the disk (or its quota) is full."""


class RecordUnstorable(FlwdError):
    """The Core DB cannot store one record (text that is not UTF-8, an integer beyond
    64 bits, a value too big…): only the request or run it belongs to fails."""


class TriggerAlreadyFired(RecordUnstorable):
    """A run for this trigger key (one schedule fire, one webhook delivery) already
    exists: the Core DB refused a second one. Nothing of the new run was kept."""

    def __init__(self, message: str, *, key: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.key = key


class LeaseLost(RecordUnstorable):
    """A replica of a cluster wrote for a run it no longer holds: the run's lease lapsed
    and another replica reaped it (or claimed it again). The Core DB refused the
    records; the run is stopped on this replica (docs/scale-out.md)."""

    def __init__(self, message: str, *, run_id: str) -> None:
        super().__init__(message, hint="this replica could not renew its lease in time "
                                       "(the Core DB unreachable, or the process stalled)")
        self.run_id = run_id


class IdempotencyKeyTaken(RecordUnstorable):
    """A fresh record of this ``Idempotency-Key`` already exists (another request took
    it first, in this process or another one on the same Core DB): the Core DB refused
    a second one, and nothing of the new run was kept. The engine answers the request
    as a replay of ``run_id`` (or a conflict if ``body_digest`` is another body's)."""

    def __init__(self, message: str, *, key: str, body_digest: str, run_id: str,
                 created_at: float) -> None:
        super().__init__(message, hint="the request is answered by the key's run")
        self.key = key
        self.body_digest = body_digest
        self.run_id = run_id
        self.created_at = created_at


class ScheduleNotFound(FlwdError):
    """No schedule of the catalog has that name."""


class ExecutorUnavailable(FlwdError):
    """The job needs an executor (interpreter, container runtime) that is missing."""


class ContainerRuntimeUnavailable(FlwdError):
    """Neither podman nor docker is available where a container is needed."""


class ContainerNameConflict(FlwdError):
    """A container that flwd did not start holds a step's deterministic name."""


class ContainerFailed(FlwdError):
    """The container runtime itself failed (not the job inside the container)."""


class ImageRefInvalid(FlwdError):
    """A container image reference is malformed (a scheme, a leading '/', spaces)."""


class ImageRegistryNotAllowed(FlwdError):
    """The image's registry is not in the policy bundle's ``allowed_registries``."""


class ImageSignatureRequired(FlwdError):
    """``verify_signatures: required`` and the image's signature could not be verified."""


class ResourcesInvalid(FlwdError):
    """``container.resources`` cannot be parsed, or exceeds the policy ceilings."""


class PolicyBundleInvalid(FlwdError):
    """The policy bundle (``FLWD_POLICY_FILE``) cannot be read or violates its schema."""


class PolicySignatureInvalid(FlwdError):
    """The policy bundle's signature is missing, malformed or does not verify."""


class AliasReserved(FlwdError):
    """An alias name starts with ':' or is one of flwd's own verbs."""


class AliasNameInvalid(FlwdError):
    """An alias name has characters a command word cannot have."""


class AliasNameConflict(FlwdError):
    """An alias has the same name as an existing job."""


class AliasTargetInvalid(FlwdError):
    """An alias points at a job that does not exist."""


class AliasCollision(FlwdError):
    """One alias name is declared for several different targets."""


class SourceInvalid(FlwdError):
    """A source request is malformed (type, name, url, ref) — ``errors`` names each field."""


class SourceNotAllowed(FlwdError):
    """A source's path or git host is outside the allow-list; the detail names the rule."""


class SourceNotFound(FlwdError):
    """No source has that name."""


class SourceExists(FlwdError):
    """A source with that name exists with a different type or location."""


class SourceCheckoutFailed(FlwdError):
    """Materialising a source failed (git clone/fetch/checkout, unreadable folder)."""


class SourceTrustRequired(FlwdError):
    """An OCI add-on source was requested without ``trusted: true`` (``--trusted``)."""


class SourceSignatureInvalid(FlwdError):
    """An OCI source asked for ``verify_signatures`` and its image's signature did not
    verify (any verify mode)."""


class SourceSignatureUnverifiable(SourceSignatureInvalid):
    """An OCI source asked for ``verify_signatures`` while the verify mode of the current
    profile is ``disabled``: nothing would be checked."""


class AddonManifestInvalid(FlwdError):
    """An add-on image has no ``/flwd-addon/manifest.yaml``, or it violates the schema;
    ``errors`` lists every violation."""


class OciFailed(FlwdError):
    """The container runtime failed pulling, inspecting or extracting an add-on image;
    the detail carries the runtime's own message."""


class AddonRunUnsupported(FlwdError):
    """An add-on job whose manifest entry has no ``command``: it can be planned, not run."""


class IdempotencyConflict(FlwdError):
    """An ``Idempotency-Key`` was reused with a different request body."""


class KvNamespaceForbidden(FlwdError):
    """A Rule-Y KV namespace that is not allow-listed (``:serve --kv-namespace``)."""


class KvKeyNotFound(FlwdError):
    """No value is stored under that key of that KV namespace."""


class KvQuotaExceeded(FlwdError):
    """A KV put would take its namespace over its byte quota."""


class KvInvalid(FlwdError):
    """A KV request is malformed; each subclass is one of the reference's 400 titles."""


class KvKeyRequired(KvInvalid):
    """A KV put or delete names no key (``PUT /kv/NS`` or ``/kv/NS/``)."""


class KvKeyTooLong(KvInvalid):
    """A KV key (or a list cursor) is longer than 256 bytes."""


class KvKeyNotText(KvInvalid):
    """A KV key or prefix is not UTF-8 text (it is shown as JSON text)."""


class KvValueTooLong(KvInvalid):
    """A KV value is longer than 8 KiB (decoded)."""


class KvValueNotBase64(KvInvalid):
    """A KV value is not standard base64 (RFC 4648 §4, with padding)."""


class KvCursorInvalid(KvInvalid):
    """A KV list cursor is not the standard base64 of a key."""


class KvLimitInvalid(KvInvalid):
    """A KV list ``limit`` is not a positive integer."""


class RunFilterInvalid(FlwdError):
    """A history query (``GET /runs``, ``flwd :runs``) names a status, time or argument
    filter that cannot be used; ``errors`` lists each."""


class ReplicaUnfit(FlwdError):
    """A run that only this replica of a cluster may execute (it has secret arguments)
    needs labels this replica lacks (the job's ``runs_on``)."""


class RunOwnedElsewhere(FlwdError):
    """The run is live in another flwd server process, which alone can cancel it (not
    said of a replica of a PostgreSQL Core DB: the request goes through the Core DB)."""


class ListenFailed(FlwdError):
    """``flwd :serve`` cannot listen on its ``--bind`` address (in use, not this host's,
    a port it may not use, a name that does not resolve)."""


class ServerUnreachable(FlwdError):
    """Remote mode: the flwd server cannot be reached, or answered with a server error."""


class RemoteProblem(FlwdError):
    """Remote mode: the flwd server answered with a problem document (RFC 7807).

    The status, title, code and exit status come from that document (see
    ``flwd.cli._remote``), not from :data:`PROBLEMS`.
    """

    def __init__(self, detail: str, *, spec: ProblemSpec, hint: str | None = None,
                 errors: list[dict[str, str]] | None = None, field_prefix: str = "",
                 **extensions: Any) -> None:
        super().__init__(detail, hint=hint, errors=errors, **extensions)
        self.spec = spec
        self.field_prefix = field_prefix

    @property
    def problem(self) -> ProblemSpec:
        return self.spec


@dataclass(frozen=True, slots=True)
class ProblemSpec:
    status: int
    title: str
    code: str
    exit_status: int
    type: str | None = None


#: The single mapping from domain states to RFC 7807 problems and CLI exit statuses.
PROBLEMS: dict[type[FlwdError], ProblemSpec] = {
    FlwdError: ProblemSpec(500, "internal error", "E_INTERNAL", 1),
    UsageError: ProblemSpec(400, "bad request", "E_USAGE", 2),
    JobNotFound: ProblemSpec(404, "job not found", "job.not.found", 2),
    ArgsInvalid: ProblemSpec(422, "argument validation failed", "E_ARGS", 2),
    ConfigInvalid: ProblemSpec(422, "invalid job configuration", "E_CONFIG", 2),
    ConfigTooLarge: ProblemSpec(422, "job configuration too large", "config.too.large", 2),
    # The reference's code: a policy of the DAG executor, not a malformed file.
    MixedExecutors: ProblemSpec(422, "mixed executors not allowed", "E_POLICY", 2),
    # 409: the request is fine; the workspace is in a state that makes it ambiguous.
    JobIdDuplicate: ProblemSpec(409, "duplicate job id", "job.id.duplicate", 2),
    RunNotFound: ProblemSpec(404, "run not found", "run.not.found", 2),
    PolicyDenied: ProblemSpec(422, "policy override denied", "policy.denied", 2),
    ProfileInvalid: ProblemSpec(422, "invalid security profile", "E_POLICY", 2),
    StorageError: ProblemSpec(503, "storage unavailable", "E_STORAGE", 1),
    RecordUnstorable: ProblemSpec(422, "record cannot be stored", "record.unstorable", 2),
    ExecutorUnavailable: ProblemSpec(422, "executor unavailable", "E_EXECUTOR", 2),
    ContainerRuntimeUnavailable: ProblemSpec(422, "container runtime unavailable",
                                             "container.runtime.unavailable", 2),
    ContainerNameConflict: ProblemSpec(422, "container name conflict",
                                       "container.name.conflict", 1),
    ContainerFailed: ProblemSpec(500, "container runtime failed", "E_OCI", 1),
    ImageRefInvalid: ProblemSpec(422, "invalid container image", "E_IMAGE_POLICY", 2),
    ImageRegistryNotAllowed: ProblemSpec(422, "image registry not allowed",
                                         "image.registry.not.allowed", 2),
    ImageSignatureRequired: ProblemSpec(422, "image signature required",
                                        "image.signature.required", 2),
    ResourcesInvalid: ProblemSpec(422, "container resources refused", "E_IMAGE_POLICY", 2),
    PolicyBundleInvalid: ProblemSpec(422, "invalid policy bundle", "E_POLICY", 2),
    PolicySignatureInvalid: ProblemSpec(422, "policy bundle signature invalid",
                                        "policy.signature.invalid", 2),
    AliasReserved: ProblemSpec(400, "alias invalid", "alias.reserved", 2),
    AliasNameInvalid: ProblemSpec(400, "alias invalid", "alias.name.invalid", 2),
    AliasNameConflict: ProblemSpec(400, "alias invalid", "alias.name.conflict", 2),
    AliasTargetInvalid: ProblemSpec(400, "alias invalid", "alias.target.invalid", 2),
    AliasCollision: ProblemSpec(409, "alias collision", "alias.collision", 2),
    # 422: the request is well-formed JSON of the right shape; its values are unusable.
    SourceInvalid: ProblemSpec(422, "invalid source", "source.invalid", 2),
    # 400, as the reference answers a request it will not act on (its §10.2).
    SourceNotAllowed: ProblemSpec(400, "source not allowed", "source.not.allowed", 2),
    SourceNotFound: ProblemSpec(404, "source not found", "source.not.found", 2),
    SourceExists: ProblemSpec(409, "source exists", "source.exists", 2),
    SourceCheckoutFailed: ProblemSpec(422, "source checkout failed", "source.checkout.failed", 1),
    SourceTrustRequired: ProblemSpec(400, "source trust required", "source.trust.required", 2),
    # The reference's code and titles (its only hyphenated code besides idempotency's).
    SourceSignatureInvalid: ProblemSpec(422, "signature verification failed",
                                        "source-signature-invalid", 2),
    SourceSignatureUnverifiable: ProblemSpec(422, "signature verification required",
                                             "source-signature-invalid", 2),
    AddonManifestInvalid: ProblemSpec(400, "invalid add-on manifest", "E_ADDON_MANIFEST", 2),
    OciFailed: ProblemSpec(400, "OCI runtime failure", "E_OCI", 1),
    AddonRunUnsupported: ProblemSpec(501, "add-on job cannot run", "E_OCI_RUN_UNSUPPORTED", 2),
    IdempotencyConflict: ProblemSpec(409, "idempotency key conflict", "idempotency-key-conflict",
                                     2, "https://flwd.dev/problems/idempotency-key-conflict"),
    # Rule-Y KV: the titles, types and statuses of the reference (its §15.4); the
    # types under flwd's own problem base, like every other problem of flwd.
    KvNamespaceForbidden: ProblemSpec(403, "namespace forbidden", "namespace-forbidden", 2,
                                      "https://flwd.dev/problems/namespace-forbidden"),
    KvKeyNotFound: ProblemSpec(404, "key not found", "key.not.found", 1),
    KvQuotaExceeded: ProblemSpec(429, "storage quota exceeded", "storage-quota-exceeded", 1,
                                 "https://flwd.dev/problems/storage-quota-exceeded"),
    KvInvalid: ProblemSpec(400, "invalid KV request", "kv.invalid", 2),
    KvKeyRequired: ProblemSpec(400, "key required", "kv.key.required", 2),
    KvKeyTooLong: ProblemSpec(400, "key exceeds maximum length", "kv.key.too.long", 2),
    KvKeyNotText: ProblemSpec(400, "key must be UTF-8", "kv.key.not.text", 2),
    KvValueTooLong: ProblemSpec(400, "value exceeds maximum length", "kv.value.too.long", 2),
    KvValueNotBase64: ProblemSpec(400, "value must be base64", "kv.value.not.base64", 2),
    KvCursorInvalid: ProblemSpec(400, "cursor must be base64", "kv.cursor.invalid", 2),
    KvLimitInvalid: ProblemSpec(400, "invalid limit", "kv.limit.invalid", 2),
    # flwd's own 400 (the reference has no such filters), titled as flwd's other 400s.
    RunFilterInvalid: ProblemSpec(400, "invalid request", "invalid-request", 2),
    ReplicaUnfit: ProblemSpec(409, "replica lacks the job's labels", "cluster.labels", 2),
    RunOwnedElsewhere: ProblemSpec(409, "run owned by another server", "run.owned.elsewhere", 1),
    ScheduleNotFound: ProblemSpec(404, "schedule not found", "schedule.not.found", 2),
    # Exit 1, like the other errors of the environment rather than of the command line.
    ListenFailed: ProblemSpec(503, "cannot listen", "serve.listen.failed", 1),
    ServerUnreachable: ProblemSpec(502, "flwd server unreachable", "server.unreachable", 1),
    # The fallback only: a RemoteProblem carries the spec of the server's answer.
    RemoteProblem: ProblemSpec(502, "flwd server problem", "server.problem", 1),
}

#: Codes a CLI error line starts with (``flwd: error: CODE: …``): those whose
#: troubleshooting entry users look up by code (README, docs/containers.md), so the
#: line they see carries the word they search for. A server's answer with one of
#: these codes (remote mode) reads the same.
CODES_IN_CLI_LINE: frozenset[str] = frozenset({"container.runtime.unavailable"})
