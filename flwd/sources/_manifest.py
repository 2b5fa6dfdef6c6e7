"""The add-on manifest (``/flwd-addon/manifest.yaml``): strict schema validation (sans-IO).

The schema is the reference's (§12.6) — closed-world at every level, so a typo
is a violation, never silently ignored — plus one key of our own: a job's
``command`` (a list of strings), the argv its runs execute inside the add-on
image. A job without ``command`` can be listed and planned, not run.

:func:`parse_manifest` reports *every* violation at once: the
:class:`~flwd.errors.AddonManifestInvalid` it raises carries one
``{"arg": <path>, "message": ...}`` per violation, paths written like
``jobs[0].argspec.args[1].type``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from flwd.errors import AddonManifestInvalid
from flwd.jobs import Arg, YamlLimits, YamlRefused, clip, load_yaml

MANIFEST_PATH: Final = "/flwd-addon/manifest.yaml"
API_VERSION: Final = "flwd.addon/v1"
KIND: Final = "AddOn"
#: Manifests are small; a bigger output is not a manifest.
MAX_BYTES: Final = 1 << 20
#: The job config's limits but for the size: a manifest lists every job of an add-on.
LIMITS: Final = YamlLimits(max_bytes=MAX_BYTES, max_chars=4 * MAX_BYTES)
#: Violations listed (the count of the rest is given), each cut to one bounded line.
_MAX_VIOLATIONS: Final = 50
_MAX_MESSAGE: Final = 300

_META_ID_RE: Final = re.compile(r"^[a-z0-9](?:[a-z0-9_.-]{1,62}[a-z0-9])$")
_SEMVER_RE: Final = re.compile(
    r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_JOB_ID_RE: Final = re.compile(r"^[a-z][a-z0-9_.:-]{2,}$")
_ARG_TYPES: Final = ("string", "integer", "number", "boolean", "array", "object")
_ARG_FORMATS: Final = ("", "path", "file", "directory", "secret")
_VERIFY: Final = ("required", "permissive", "disabled")
_SUMMARY_MAX: Final = 240

_KEYS: Final[dict[str, frozenset[str]]] = {
    "manifest": frozenset({"apiVersion", "kind", "metadata", "requires", "jobs"}),
    "metadata": frozenset({"name", "id", "version", "summary", "description", "homepage",
                           "license", "maintainers"}),
    "maintainer": frozenset({"name", "email", "url"}),
    "requires": frozenset({"flwd", "permissions", "containers"}),
    "container": frozenset({"image", "platform", "verify_signatures"}),
    "job": frozenset({"id", "name", "summary", "description", "extends", "argspec",
                      "requirements", "command"}),
    "argspec": frozenset({"args"}),
    "arg": frozenset({"name", "title", "description", "type", "format", "secret", "required",
                      "default", "enum", "items_type", "items_enum", "value_type", "minLength",
                      "maxLength", "minItems", "maxItems", "minimum", "maximum", "multipleOf",
                      "deprecated"}),
    "requirements": frozenset({"tools"}),
    "tool": frozenset({"name", "version"}),
}
#: Schema keys with no counterpart in flwd's argument model: accepted, not enforced
#: (docs/addons.md says so).
_ARG_NOT_BOUND: Final = frozenset({"title", "minItems", "maxItems", "multipleOf", "deprecated"})


@dataclass(frozen=True, slots=True)
class AddonJob:
    id: str
    name: str
    summary: str
    description: str | None
    args: tuple[Arg, ...]
    #: The argv of its runs inside the image; None: plans only.
    command: tuple[str, ...] | None
    tools: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class AddonManifest:
    name: str
    jobs: tuple[AddonJob, ...]
    id: str | None = None
    version: str | None = None
    summary: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    def summary_json(self) -> dict[str, Any]:
        """``metadata.manifest`` of the source document."""
        out: dict[str, Any] = {"name": self.name, "jobs": len(self.jobs)}
        for key, value in (("id", self.id), ("version", self.version),
                           ("summary", self.summary)):
            if value is not None:
                out[key] = value
        return out


class _Violations:
    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, path: str, message: str) -> None:
        # Paths and messages may quote the manifest's keys and values.
        self.items.append({"arg": clip(path, _MAX_MESSAGE),
                           "message": clip(message, _MAX_MESSAGE)})

    def closed(self, data: Mapping[str, Any], level: str, path: str) -> None:
        for key in data:
            if key not in _KEYS[level]:
                shown = f"{path}.{key}" if path else str(key)
                self.add(shown, f"{shown} is not allowed (allowed here: "
                                f"{', '.join(sorted(_KEYS[level]))})")

    def mapping(self, value: Any, path: str, *, required: bool = False) -> Mapping[str, Any] | None:
        if value is None:
            if required:
                self.add(path, f"{path} is required")
            return None
        if not isinstance(value, Mapping):
            self.add(path, f"{path} must be an object (got {_kind(value)})")
            return None
        return value

    def sequence(self, value: Any, path: str) -> list[Any] | None:
        if value is None:
            return None
        if not isinstance(value, list):
            self.add(path, f"{path} must be an array (got {_kind(value)})")
            return None
        return value

    def text(self, data: Mapping[str, Any], key: str, path: str, *,
             required: bool = False, check: Callable[[str], str | None] | None = None
             ) -> str | None:
        shown = f"{path}.{key}" if path else key
        value = data.get(key)
        if value is None or value == "":
            if required:
                self.add(shown, f"{shown} is required")
            return None
        if not isinstance(value, str):
            self.add(shown, f"{shown} must be a string (got {_kind(value)})")
            return None
        if check is not None and (problem := check(value)) is not None:
            self.add(shown, f"{shown} {problem}")
            return None
        return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _match(pattern: re.Pattern[str], shown: str) -> Callable[[str], str | None]:
    return lambda value: None if pattern.fullmatch(value) else f"must match {shown}"


def _at_most(limit: int) -> Callable[[str], str | None]:
    return lambda value: None if len(value) <= limit else f"must be <={limit} characters"


def parse_manifest(text: str | bytes) -> AddonManifest:
    """Parse and validate a manifest.

    Raises:
        AddonManifestInvalid: not YAML, or any schema violation (all of them in ``errors``).
    """
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise _invalid([{"arg": "manifest", "message":
                             f"the manifest is larger than {MAX_BYTES} bytes"}])
        text = text.decode("utf-8", errors="replace")
    try:
        data = load_yaml(text, LIMITS)
    except YamlRefused as exc:
        message = (f"the manifest is refused: {exc.reason}" if exc.limit
                   else f"the manifest is not valid YAML: {exc.reason}")
        raise _invalid([{"arg": "manifest", "message": message}]) from None
    return validate_manifest(data)


def validate_manifest(data: Any) -> AddonManifest:
    """Validate decoded manifest data; see :func:`parse_manifest`."""
    v = _Violations()
    if not isinstance(data, Mapping):
        v.add("manifest", f"the manifest must be an object (got {_kind(data)})")
        raise _invalid(v.items)
    v.closed(data, "manifest", "manifest")
    if data.get("apiVersion") != API_VERSION:
        v.add("apiVersion", f"apiVersion must be {API_VERSION}")
    if data.get("kind") != KIND:
        v.add("kind", f"kind must be {KIND}")

    name = meta_id = version = summary = None
    metadata = v.mapping(data.get("metadata"), "metadata", required=True)
    if metadata is not None:
        v.closed(metadata, "metadata", "metadata")
        name = v.text(metadata, "name", "metadata", required=True,
                      check=lambda s: None if len(s.strip()) >= 3
                      else "must be at least 3 characters")
        meta_id = v.text(metadata, "id", "metadata",
                         check=_match(_META_ID_RE, _META_ID_RE.pattern))
        version = v.text(metadata, "version", "metadata",
                         check=lambda s: None if _SEMVER_RE.fullmatch(s)
                         else "must be a SemVer string (e.g., 1.2.3)")
        summary = v.text(metadata, "summary", "metadata", check=_at_most(_SUMMARY_MAX))
        for key in ("description", "homepage", "license"):
            v.text(metadata, key, "metadata")
        maintainers = v.sequence(metadata.get("maintainers"), "metadata.maintainers")
        for index, item in enumerate(maintainers or []):
            path = f"metadata.maintainers[{index}]"
            entry = v.mapping(item, path, required=True)
            if entry is not None:
                v.closed(entry, "maintainer", path)
                v.text(entry, "name", path, required=True)
                v.text(entry, "email", path)
                v.text(entry, "url", path)

    requires = data.get("requires")
    if "requires" not in data:
        v.add("requires", "requires section is required (it may be {})")
    elif requires is not None:
        section = v.mapping(requires, "requires")
        if section is not None:
            _check_requires(v, section)

    jobs: list[AddonJob] = []
    raw_jobs = data.get("jobs")
    if not isinstance(raw_jobs, list) or not raw_jobs:
        if raw_jobs is not None and not isinstance(raw_jobs, list):
            v.add("jobs", f"jobs must be an array (got {_kind(raw_jobs)})")
        else:
            v.add("jobs", "jobs must contain at least one entry")
    else:
        seen: dict[str, int] = {}
        for index, item in enumerate(raw_jobs):
            job = _check_job(v, item, f"jobs[{index}]")
            if job is None:
                continue
            if job.id in seen:
                v.add(f"jobs[{index}].id",
                      f"jobs[{index}].id {job.id!r} repeats jobs[{seen[job.id]}].id")
                continue
            seen[job.id] = index
            jobs.append(job)
    if v.items:
        raise _invalid(v.items)
    assert name is not None
    return AddonManifest(name=name, jobs=tuple(jobs), id=meta_id, version=version,
                         summary=summary, raw=dict(data))


def _check_requires(v: _Violations, section: Mapping[str, Any]) -> None:
    v.closed(section, "requires", "requires")
    flwd = v.mapping(section.get("flwd"), "requires.flwd")
    if flwd is not None:
        for key, value in flwd.items():
            if not isinstance(key, str) or not isinstance(value, str):
                v.add(f"requires.flwd.{key}", f"requires.flwd.{key} must be a string")
    permissions = v.sequence(section.get("permissions"), "requires.permissions")
    for index, item in enumerate(permissions or []):
        if not isinstance(item, str):
            v.add(f"requires.permissions[{index}]",
                  f"requires.permissions[{index}] must be a string (got {_kind(item)})")
    containers = v.sequence(section.get("containers"), "requires.containers")
    for index, item in enumerate(containers or []):
        path = f"requires.containers[{index}]"
        entry = v.mapping(item, path, required=True)
        if entry is None:
            continue
        v.closed(entry, "container", path)
        v.text(entry, "image", path, required=True)
        v.text(entry, "platform", path)
        mode = entry.get("verify_signatures")
        if mode is not None and mode not in _VERIFY:
            v.add(f"{path}.verify_signatures",
                  f"{path}.verify_signatures must be required|permissive|disabled")


def _check_job(v: _Violations, item: Any, path: str) -> AddonJob | None:
    entry = v.mapping(item, path, required=True)
    if entry is None:
        return None
    before = len(v.items)
    v.closed(entry, "job", path)
    job_id = v.text(entry, "id", path, required=True,
                    check=_match(_JOB_ID_RE, _JOB_ID_RE.pattern))
    name = v.text(entry, "name", path, required=True)
    summary = v.text(entry, "summary", path, required=True, check=_at_most(_SUMMARY_MAX))
    description = v.text(entry, "description", path)
    extends = v.sequence(entry.get("extends"), f"{path}.extends")
    for index, value in enumerate(extends or []):
        if not isinstance(value, str):
            v.add(f"{path}.extends[{index}]", f"{path}.extends[{index}] must be a string")
    args: list[Arg] = []
    argspec = v.mapping(entry.get("argspec"), f"{path}.argspec", required=True)
    if argspec is not None:
        v.closed(argspec, "argspec", f"{path}.argspec")
        raw_args = v.sequence(argspec.get("args"), f"{path}.argspec.args")
        names: set[str] = set()
        for index, raw in enumerate(raw_args or []):
            arg = _check_arg(v, raw, f"{path}.argspec.args[{index}]")
            if arg is None:
                continue
            if arg.name in names:
                v.add(f"{path}.argspec.args[{index}].name",
                      f"{path}.argspec.args[{index}].name {arg.name!r} is declared twice")
                continue
            names.add(arg.name)
            args.append(arg)
    tools: list[dict[str, str]] = []
    requirements = v.mapping(entry.get("requirements"), f"{path}.requirements")
    if requirements is not None:
        v.closed(requirements, "requirements", f"{path}.requirements")
        for index, raw in enumerate(v.sequence(requirements.get("tools"),
                                               f"{path}.requirements.tools") or []):
            tool_path = f"{path}.requirements.tools[{index}]"
            tool = v.mapping(raw, tool_path, required=True)
            if tool is None:
                continue
            v.closed(tool, "tool", tool_path)
            tool_name = v.text(tool, "name", tool_path, required=True)
            tool_version = v.text(tool, "version", tool_path)
            if tool_name is not None:
                tools.append({"name": tool_name, **({"version": tool_version}
                                                    if tool_version else {})})
    command: tuple[str, ...] | None = None
    raw_command = entry.get("command")
    if raw_command is not None:
        if (not isinstance(raw_command, list) or not raw_command
                or not all(isinstance(word, str) and word for word in raw_command)):
            v.add(f"{path}.command", f"{path}.command must be a non-empty array of non-empty "
                                     "strings (the argv run inside the image)")
        else:
            command = tuple(raw_command)
    if len(v.items) > before or job_id is None or name is None or summary is None:
        return None
    return AddonJob(id=job_id, name=name, summary=summary, description=description,
                    args=tuple(args), command=command, tools=tuple(tools))


def _check_arg(v: _Violations, raw: Any, path: str) -> Arg | None:
    entry = v.mapping(raw, path, required=True)
    if entry is None:
        return None
    before = len(v.items)
    v.closed(entry, "arg", path)
    v.text(entry, "name", path, required=True)
    kind = entry.get("type")
    if kind is None:
        v.add(f"{path}.type", f"{path}.type is required")
    elif kind not in _ARG_TYPES:
        v.add(f"{path}.type", f'{path}.type "{kind}" is invalid (use one of: '
                              f'{", ".join(_ARG_TYPES)})')
    form = entry.get("format")
    if form is not None and form not in _ARG_FORMATS:
        v.add(f"{path}.format", f'{path}.format "{form}" is invalid (use one of: '
                                f'path, file, directory, secret)')
    if len(v.items) > before:
        return None
    # What flwd's own argument model adds (reserved names, defaults of the
    # declared type, constraints that fit the type): also violations.
    fields = {key: value for key, value in entry.items()
              if key not in _ARG_NOT_BOUND and value is not None}
    if fields.get("format") == "":
        del fields["format"]
    if "description" not in fields and isinstance(entry.get("title"), str):
        fields["description"] = entry["title"]
    try:
        return Arg.model_validate(fields)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            problems = (error.get("ctx") or {}).get("problems")
            if problems:
                for loc, message in problems:
                    where = ".".join(str(part) for part in loc)
                    v.add(f"{path}.{where}" if where else path, f"{path}.{where}: {message}")
                continue
            where = ".".join(str(part) for part in error["loc"])
            shown = f"{path}.{where}" if where else path
            v.add(shown, f"{shown}: {error['msg']}")
        return None


def _invalid(errors: list[dict[str, str]]) -> AddonManifestInvalid:
    if len(errors) > _MAX_VIOLATIONS:
        rest = len(errors) - _MAX_VIOLATIONS
        errors = [*errors[:_MAX_VIOLATIONS],
                  {"arg": "manifest", "message": f"{rest} more violations not listed"}]
    first = errors[0]["message"]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return AddonManifestInvalid(
        f"invalid add-on manifest {MANIFEST_PATH}: {first}{more}",
        hint="fix every violation listed in 'errors' and rebuild the image", errors=errors)
