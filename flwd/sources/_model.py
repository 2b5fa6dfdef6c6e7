"""What a source is: the validated request, its materialised state, its JSON (sans-IO).

A *source* is another root of jobs next to the workspace's ``scripts/``: a
folder on this host (``local``), a git repository pinned to a commit
(``git``), or an add-on image whose ``/flwd-addon/manifest.yaml`` declares
jobs that run inside it (``oci``, see ``_oci``). Its jobs are namespaced
``<source>/<id>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from flwd.errors import FlwdError, SourceInvalid, SourceTrustRequired
from flwd.events import format_ts
from flwd.policy import image_repository

SourceType = Literal["local", "git", "oci"]
Expose = Literal["none", "read", "readwrite"]
Status = Literal["pending", "ready", "error"]
#: OCI add-ons: ``on-add`` pulls when the source is added and pins the digest;
#: ``on-run`` pulls nothing then (the image must be present) and defers pulls to runs.
PullPolicy = Literal["on-add", "on-run"]

TYPES: Final = ("local", "git", "oci")
PULL_POLICIES: Final = ("on-add", "on-run")
#: Every spelling of a pull policy a request may use, lower-cased, by what it means:
#: flwd's own, and the reference's (§12.3) — ``always`` pulls when the source is added
#: (``on-add``); ``ifNotPresent`` (three spellings) and ``never`` pull nothing then
#: (``on-run``). A source stores and shows flwd's word.
PULL_POLICY_SPELLINGS: Final[Mapping[str, PullPolicy]] = {
    "on-add": "on-add", "always": "on-add",
    "on-run": "on-run", "ifnotpresent": "on-run", "if-not-present": "on-run",
    "if_not_present": "on-run", "never": "on-run",
}
#: A git source without a ``ref`` follows the repository's default branch (its ``HEAD``),
#: as the reference's does (§12.2).
DEFAULT_GIT_REF: Final = "HEAD"


def pull_policy_named(text: object) -> PullPolicy | None:
    """The pull policy ``text`` spells (any case; see :data:`PULL_POLICY_SPELLINGS`), or
    None when it spells none."""
    return PULL_POLICY_SPELLINGS.get(text.strip().lower()) if isinstance(text, str) else None

#: Like a job id segment (a namespace must be one), at most 64 characters.
NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_REQUEST_KEYS: Final = frozenset({"name", "type", "ref", "url", "expose", "trusted",
                                  "pull_policy", "verify_signatures", "trust", "schedules"})
_BAD_REF_CHARS: Final = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """What the user asked for (validated); never changes while the source lives."""

    name: str
    type: SourceType
    #: local: the folder as given; git: the branch, tag or commit.
    ref: str
    #: git only: the repository URL as given.
    url: str | None = None
    expose: Expose = "read"
    #: oci only (``ref`` is then the image reference).
    pull_policy: PullPolicy | None = None
    #: oci only: the caller opted in (``trusted: true``); never False for a stored oci source.
    trusted: bool = False
    #: oci only: the image's signature must verify, whatever the verify mode
    #: (``verify_signatures: true``; see ``_oci.source_image_trust``).
    verify_signatures: bool = False
    #: local and git: the ``schedule:`` entries of its jobs fire (``schedules: true``).
    #: Off by default: a repository added to run its jobs by hand must not start runs on
    #: its own — nor start to when a refresh brings a schedule in.
    schedules: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "ref": self.ref}
        if self.url is not None:
            out["url"] = self.url
        out["expose"] = self.expose
        if self.type != "oci":
            out["schedules"] = self.schedules
        if self.type == "oci":
            out["pull_policy"] = self.pull_policy or "on-add"
            out["trusted"] = self.trusted
            out["verify_signatures"] = self.verify_signatures
        return out

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> SourceSpec:
        return SourceSpec(name=data["name"], type=data["type"], ref=data["ref"],
                          url=data.get("url"), expose=data.get("expose", "read"),
                          pull_policy=data.get("pull_policy"),
                          trusted=bool(data.get("trusted", False)),
                          verify_signatures=bool(data.get("verify_signatures", False)),
                          schedules=bool(data.get("schedules", False)))

    def same_location(self, other: SourceSpec) -> bool:
        """Whether ``other`` names the same thing (a new ref of one repo is an update)."""
        if self.type != other.type:
            return False
        if self.type == "git":
            return self.url == other.url
        # A local source is updated by pointing it elsewhere, an add-on by a new image.
        return True


@dataclass(frozen=True, slots=True)
class SourceState:
    """The result of the last materialisation (or the attempt at one)."""

    status: Status = "pending"
    #: Where its jobs are discovered (absolute).
    root: str | None = None
    #: git: the checkout of the pinned commit; local: the folder.
    checkout_path: str | None = None
    resolved_commit: str | None = None
    #: local: the folder with symlinks resolved.
    resolved_path: str | None = None
    error: str | None = None
    refreshed_at: float | None = None
    #: oci: the pinned manifest digest (``sha256:…``); None for ``on-run`` until a
    #: run succeeded.
    digest: str | None = None
    image_id: str | None = None
    #: oci: ``metadata.manifest`` — the manifest's name, id, version, summary, job count.
    manifest: Mapping[str, Any] | None = None
    #: oci: what ``image inspect`` says of the image: when it was built, its size, labels.
    created: str | None = None
    size_bytes: int | None = None
    labels: Mapping[str, str] | None = None
    #: oci: ``metadata.image_trust`` — the signature check when the source was added
    #: (``ImageTrust.source_json``); None when the verify mode was ``disabled``.
    image_trust: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in (
            ("status", self.status), ("root", self.root), ("checkout_path", self.checkout_path),
            ("resolved_commit", self.resolved_commit), ("resolved_path", self.resolved_path),
            ("error", self.error), ("refreshed_at", self.refreshed_at),
            ("digest", self.digest), ("image_id", self.image_id),
            ("manifest", dict(self.manifest) if self.manifest is not None else None),
            ("created", self.created), ("size_bytes", self.size_bytes),
            ("labels", dict(self.labels) if self.labels is not None else None),
            ("image_trust", dict(self.image_trust) if self.image_trust is not None else None))
            if value is not None}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> SourceState:
        return SourceState(**{f.name: data[f.name] for f in fields(SourceState)
                              if f.name in data})


@dataclass(frozen=True, slots=True)
class Source:
    spec: SourceSpec
    state: SourceState = field(default_factory=SourceState)
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def name(self) -> str:
        return self.spec.name

    def with_state(self, state: SourceState, at: float) -> Source:
        return replace(self, state=state, updated_at=at)

    def provenance(self) -> dict[str, Any]:
        """``provenance.source`` of plans and runs of this source's jobs (reference §12.4),
        with the source's ``metadata`` as it was when the plan was made."""
        out: dict[str, Any] = {"name": self.spec.name, "type": self.spec.type,
                               "ref": self.spec.ref}
        if self.spec.type == "git":
            out["url"] = self.spec.url
            out["resolved_ref"] = self.state.resolved_commit
            out["resolved_commit"] = self.state.resolved_commit
        elif self.spec.type == "oci":
            out["digest"] = self.state.digest
            out["resolved_ref"] = self.state.digest
            out["pull_policy"] = self.spec.pull_policy or "on-add"
            out["image"] = self.image
            out["trusted"] = True
            out["verify_signatures"] = self.spec.verify_signatures or None
        else:
            out["resolved_ref"] = self.state.resolved_path
            out["resolved_path"] = self.state.resolved_path
        out["checkout_path"] = self.state.checkout_path
        out["metadata"] = self.metadata()
        return {key: value for key, value in out.items() if value is not None}

    def metadata(self) -> dict[str, Any]:
        """``metadata`` of the source's document, and of ``provenance.source``.

        git: where and what was checked out; local: the resolved folder; oci
        (reference §12.3): trust, pull policy, the cached manifest and its summary,
        the pinned digest, and what ``image inspect`` and the signature check said.
        """
        state = self.state
        out: dict[str, Any] = {key: value for key, value in (
            ("checkout_path", state.checkout_path), ("resolved_path", state.resolved_path),
            ("resolved_commit", state.resolved_commit),
            ("refreshed_at", _timestamp(state.refreshed_at))) if value is not None}
        if self.spec.type == "oci":
            out.update({key: value for key, value in (
                ("trusted", True), ("pull_policy", self.spec.pull_policy or "on-add"),
                ("manifest_path", f"{state.checkout_path}/manifest.yaml"
                 if state.checkout_path else None),
                ("manifest", dict(state.manifest) if state.manifest else None),
                ("digest", state.digest), ("image_id", state.image_id),
                ("image", self.image), ("created", state.created),
                ("size_bytes", state.size_bytes),
                ("labels", dict(state.labels) if state.labels else None),
                ("image_trust", dict(state.image_trust) if state.image_trust else None))
                if value is not None})
        return out

    @property
    def image(self) -> str:
        """oci: the image runs use — pinned by digest when one is known, else the ref."""
        return pinned_image(self.spec.ref, self.state.digest)

    def to_json(self, *, jobs: int | None = None,
                aliases: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The public document of ``GET /sources`` and ``flwd :sources list --json``."""
        out = self.spec.to_json()
        out["status"] = self.state.status
        if self.state.error:
            out["error"] = self.state.error
        if self.spec.type == "git":
            out["resolved_ref"] = self.state.resolved_commit
            out["resolved_commit"] = self.state.resolved_commit
        elif self.spec.type == "oci":
            out["resolved_ref"] = self.state.digest
            out["digest"] = self.state.digest
        else:
            out["resolved_ref"] = self.state.resolved_path
        out = {key: value for key, value in out.items() if value is not None}
        if jobs is not None:
            out["jobs"] = jobs
        if aliases is not None:
            out["aliases"] = aliases
        out["provenance"] = self.provenance()
        out["metadata"] = self.metadata()
        out["created_at"] = format_ts(self.created_at)
        out["updated_at"] = format_ts(self.updated_at)
        return out


def _timestamp(ts: float | None) -> str | None:
    """A stored epoch time as the API shows every time: RFC 3339 UTC, like a run's."""
    return None if ts is None else format_ts(ts)


def parse_request(data: Mapping[str, Any]) -> SourceSpec:
    """Validate a ``POST /sources`` body (or the CLI's flags); every bad field is listed.

    Raises:
        SourceInvalid: with ``errors`` naming each field and what to do.
    """
    errors: list[dict[str, str]] = []

    def bad(arg: str, message: str) -> None:
        if all(error["arg"] != arg for error in errors):  # one (the first) reason per field
            errors.append({"arg": arg, "message": message})

    for key in sorted(set(data) - _REQUEST_KEYS):
        bad(key, "unknown field (fields: name, type, ref, url, expose, trusted, pull_policy, "
                 "verify_signatures, schedules)")
    kind = data.get("type")
    if kind is None:
        bad("type", "required: 'local', 'git' or 'oci'")
    elif kind not in TYPES:
        bad("type", f"unknown source type {kind!r}: use 'local', 'git' or 'oci'")
    fields: dict[str, str | None] = {}
    for key in ("name", "ref", "url"):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            bad(key, "must be a string")
            value = None
        fields[key] = value.strip() if isinstance(value, str) else None
    expose = data.get("expose", "read")
    if expose not in ("none", "read", "readwrite"):
        bad("expose", "must be 'none', 'read' or 'readwrite'")
    if data.get("trusted") not in (None, True, False):
        bad("trusted", "must be true or false")
    verify_signatures = data.get("verify_signatures")
    if verify_signatures is not None and not isinstance(verify_signatures, bool):
        bad("verify_signatures", "must be true or false")
    elif verify_signatures and kind in TYPES and kind != "oci":
        bad("verify_signatures", "only oci sources have an image signature to verify")
    schedules = data.get("schedules")
    if schedules is not None and not isinstance(schedules, bool):
        bad("schedules", "must be true or false")
    elif schedules and kind == "oci":
        bad("schedules", "an oci add-on's jobs have no schedules")
    ref, url = fields["ref"], fields["url"]
    pull_policy = data.get("pull_policy")
    if pull_policy is not None and kind != "oci":
        bad("pull_policy", "only oci sources have a pull policy")
    if kind == "oci":
        ref = _check_oci(data, ref, url, bad)
        pull_policy = pull_policy_named(pull_policy or "on-add")
    elif kind == "local":
        if not ref:
            bad("ref", "required for a local source: the folder holding its jobs")
        if url:
            bad("url", "a local source has no url: put the folder in 'ref'")
    elif kind == "git":
        if not url:
            bad("url", "required for a git source, e.g. file:///srv/repos/tools.git")
        ref = ref or DEFAULT_GIT_REF
        if ref.startswith("-") or _BAD_REF_CHARS.search(ref) or ".." in ref or \
                ref.endswith((".", "/", ".lock")):
            bad("ref", f"{ref!r} is not a valid git ref name")
    name = fields["name"]
    if name is None and kind in TYPES and not errors:
        name = default_name(kind, ref or "", url)
    if kind == "oci" and not errors and data.get("trusted") is not True:
        # Checked after the shape: a malformed request is told what is malformed first.
        raise SourceTrustRequired(
            f"oci source {name or ref!r} must be explicitly trusted: its image's manifest "
            "is read by running the image",
            hint="resubmit with \"trusted\": true (API) or --trusted (CLI)",
            errors=[{"arg": "trusted", "message": "must be true for an oci source"}])
    if name is not None and not NAME_RE.fullmatch(name):
        if "/" in name or "\\" in name:
            bad("name", f"invalid name {name!r}: a source name is one word, no '/' or '\\'")
        else:
            bad("name", f"invalid name {name!r}: use 1-64 letters, digits, '-' or '_', "
                        "starting with a letter or digit")
    if errors:
        first = errors[0]
        raise SourceInvalid(f"invalid source: {first['arg']}: {first['message']}",
                            hint=None if len(errors) == 1 else f"{len(errors)} problems",
                            errors=errors)
    assert name is not None and ref is not None and kind in TYPES
    if kind == "oci":
        return SourceSpec(name=name, type=kind, ref=ref, expose=expose,
                          pull_policy=pull_policy, trusted=True,
                          verify_signatures=verify_signatures is True)
    return SourceSpec(name=name, type=kind, ref=ref, url=url or None, expose=expose,
                      schedules=schedules is True)


def _check_oci(data: Mapping[str, Any], ref: str | None, url: str | None,
               bad: Callable[[str, str], None]) -> str | None:
    """The image reference of an oci request (``ref``; ``url`` is refused), or None."""
    from flwd.policy import validate_image_ref

    if url:
        bad("url", "an oci source has no url: put the image in 'ref'")
    if data.get("pull_policy") is not None and pull_policy_named(data["pull_policy"]) is None:
        bad("pull_policy", f"must be 'on-add' (or 'always') or 'on-run' (or 'ifNotPresent', "
                           f"'never') (got {data.get('pull_policy')!r})")
    if not ref:
        bad("ref", "required for an oci source: the image, e.g. ghcr.io/example/addon:1.0.0")
        return None
    try:
        return validate_image_ref(ref)
    except FlwdError as exc:
        bad("ref", exc.errors[0]["message"] if exc.errors else exc.detail)
        return None


def pinned_image(ref: str, digest: str | None) -> str:
    """``ref`` pinned to ``digest``: ``<repository>@<digest>`` (tag and old digest dropped)."""
    if not digest:
        return ref
    return f"{image_repository(ref)}@{digest}"



def default_name(kind: str, ref: str, url: str | None) -> str:
    """The name a source gets when none is given: the folder's or repository's base name.

    Raises:
        SourceInvalid: nothing usable can be derived (``name`` must be given).
    """
    if kind == "git" and url:
        path = urlsplit(url).path if "://" in url else url.rpartition(":")[2]
        base = path.rstrip("/").rpartition("/")[2]
        base = base.removesuffix(".git")
    elif kind == "oci":
        # ghcr.io/example/addon:1.0.0 → addon
        base = image_repository(ref).rpartition("/")[2].lower()
    else:
        base = ref.rstrip("/").rpartition("/")[2]
    candidate = re.sub(r"[^A-Za-z0-9_-]+", "-", base).strip("-_")[:64]
    if not candidate or not NAME_RE.fullmatch(candidate):
        raise SourceInvalid("invalid source: name: cannot derive a name from "
                            f"{(url or ref)!r}", hint="give one with 'name'",
                            errors=[{"arg": "name", "message": "required here"}])
    return candidate
