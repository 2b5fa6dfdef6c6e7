"""Request and response shapes of ``/sources`` (pydantic; in the OpenAPI document)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel, WithJsonSchema

from flwd.sources import PULL_POLICY_SPELLINGS, pull_policy_named

from ._models import _Strict

_SOURCE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class LocalSourceRequest(_Strict):
    """``POST /sources`` for a folder on the server's host (inside the allow-list)."""

    type: Literal["local"]
    ref: str = Field(min_length=1, max_length=4096,
                     description="The folder (relative to the scripts root, or absolute)")
    name: str | None = Field(default=None, pattern=_SOURCE_NAME,
                             description="One word; default: the folder's name")
    expose: Literal["none", "read", "readwrite"] = "read"
    trusted: bool | None = None
    schedules: bool = Field(default=False, description="true: the schedule: entries of its "
                                                       "jobs fire (off by default: a source "
                                                       "does not start runs on its own)")


class GitSourceRequest(_Strict):
    """``POST /sources`` for a git repository, pinned to the commit ``ref`` names now."""

    type: Literal["git"]
    url: str = Field(min_length=1, max_length=4096,
                     description="The repository, e.g. file:///srv/repos/tools.git")
    ref: str = Field(default="HEAD", max_length=255,
                     description="A branch, tag or commit; absent or empty: HEAD, the "
                                 "repository's default branch")
    name: str | None = Field(default=None, pattern=_SOURCE_NAME,
                             description="One word; default: the repository's name")
    expose: Literal["none", "read", "readwrite"] = "read"
    trusted: bool | None = None
    schedules: bool = Field(default=False, description="true: the schedule: entries of its "
                                                       "jobs fire (off by default: a source "
                                                       "does not start runs on its own)")


def _pull_policy(text: str) -> str:
    policy = pull_policy_named(text)
    if policy is None:
        raise ValueError("must be on-add (or always) or on-run (or ifNotPresent, never)")
    return policy


#: A pull policy as a request spells it — flwd's words or the reference's, in any case —
#: and as flwd's word once read (the schema lists the spellings, case aside).
PullPolicyText = Annotated[str, AfterValidator(_pull_policy), WithJsonSchema({
    "type": "string", "enum": sorted({*PULL_POLICY_SPELLINGS, "ifNotPresent"}),
    "description": "on-add: pull now and pin the digest; on-run: pull nothing now (the "
                   "image must be present), defer to runs. The reference's always (= on-add), "
                   "ifNotPresent and never (= on-run) are accepted, in any case; the source "
                   "shows on-add or on-run"})]


def _trust_is_required(schema: dict[str, Any]) -> None:
    # The model takes any `trusted` so that the refusal is the reference's
    # `400 source.trust.required`, not a generic invalid body; the contract says
    # what is accepted: `true`, and nothing else.
    schema["properties"]["trusted"] = {
        "const": True, "title": "Trusted",
        "description": "Must be true: the image is run to read its manifest (anything else, "
                       "or nothing: 400 source.trust.required)"}
    schema["required"] = [*schema.get("required", []), "trusted"]


class OciSourceRequest(_Strict):
    """``POST /sources`` for an OCI add-on image: its ``/flwd-addon/manifest.yaml`` declares
    jobs that run inside it. Must be explicitly ``trusted`` (``source.trust.required``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_trust_is_required)

    type: Literal["oci"]
    ref: str = Field(min_length=1, max_length=1024,
                     description="The image, e.g. ghcr.io/example/addon:1.0.0")
    name: str | None = Field(default=None, pattern=_SOURCE_NAME,
                             description="One word; default: the image's base name")
    trusted: bool | None = Field(default=None, description="Must be true: the image is run "
                                                           "to read its manifest")
    pull_policy: PullPolicyText = "on-add"
    expose: Literal["none", "read", "readwrite"] = "read"
    verify_signatures: bool | None = Field(
        default=None, description="true: refuse the image unless its signature verifies, "
                                  "whatever the verify mode (422 source-signature-invalid; "
                                  "also while the mode is disabled)")


class SourceRequest(RootModel[Annotated[LocalSourceRequest | GitSourceRequest | OciSourceRequest,
                                        Field(discriminator="type")]]):
    """Body of ``POST /sources``. Unknown fields are refused."""


class Source(BaseModel):
    name: str
    type: str
    ref: str
    url: str | None = None
    expose: str
    status: Literal["pending", "ready", "error"]
    error: str | None = None
    resolved_ref: str | None = None
    resolved_commit: str | None = None
    digest: str | None = None
    pull_policy: Literal["on-add", "on-run"] | None = None
    trusted: bool | None = None
    verify_signatures: bool | None = Field(default=None, description="oci: as requested")
    schedules: bool | None = Field(default=None, description="local, git: whether the "
                                                           "schedules of its jobs fire")
    jobs: int | None = None
    aliases: list[dict[str, Any]] | None = None
    provenance: dict[str, Any] = Field(description="`provenance.source` of plans and runs of "
                                                   "its jobs (with `metadata`)")
    metadata: dict[str, Any] = Field(
        description="oci: trusted, pull_policy, manifest_path, manifest, digest, image_id, "
                    "image, created, size_bytes, labels, image_trust {verify_mode, "
                    "signature_verified, signature_reason}; git/local: where it is checked out")
    created_at: str = Field(description="RFC 3339 UTC, e.g. `2026-11-24T19:48:13.123456Z` "
                                        "(as a run's times; so is `metadata.refreshed_at`)")
    updated_at: str = Field(description="RFC 3339 UTC")
