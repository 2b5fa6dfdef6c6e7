"""The ``config.d/config.yaml`` schema and :func:`parse_config`.

Parsing happens in three passes, so that a config author sees every problem at
once and nothing is silently dropped:

1. YAML → plain data (syntax errors name the line);
2. a walk over the known shape of the document that turns every unknown key
   into a warning (with a did-you-mean) and removes it, and that rewrites the
   two argument forms (``argspec.args`` / legacy ``arguments``) into one list;
3. pydantic validation in strict mode, whose errors — each with the path of the
   field in the *file*, not in the model — all become one :class:`ConfigInvalid`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..errors import ConfigInvalid, ConfigTooLarge, MixedExecutors
from ._argspec import SPEC_ERROR, Arg, Loc, show, spec_error
from ._duration import duration_validator, parse_duration
from ._notify import NotifyRule, normalize_notify
from ._schedule import ScheduleEntry, check_schedules, schedule_problems
from ._suggest import did_you_mean
from ._yaml import YamlRefused, clip, load_yaml

__all__ = [
    "NO_STEPS",
    "STEPS_IGNORED",
    "ContainerConfig",
    "ContainerResources",
    "ErrorHandling",
    "JobConfig",
    "JobMeta",
    "ParsedConfig",
    "Step",
    "parse_config",
    "parse_duration",
]

_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_ENV_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: A replica label (``:serve --labels``, a job's ``runs_on``).
LABEL_RE: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
_STEP_EXECUTOR: Final = "a step cannot choose its executor; set executor on the job"
#: The warning for ``steps`` written without ``composition: steps`` (they never run).
STEPS_IGNORED: Final = "steps: ignored without 'composition: steps'"
#: The warning for ``composition: steps`` without any step: as in the reference, the
#: job is not a DAG then (its ``NNN_`` files run).
NO_STEPS: Final = "composition: steps lists no steps, so the job runs its NNN_ scripts instead"
class _Model(BaseModel):
    # Strict: YAML already yields real booleans and numbers; a quoted "3" where a
    # number belongs is a mistake worth reporting, not something to guess about.
    # Deferred: the validators are built by the first validation (discovery), not when
    # flwd.jobs is imported; a run from the run index validates nothing (its jobs were
    # validated by the discovery that wrote it) and never builds them.
    model_config = ConfigDict(frozen=True, strict=True, extra="forbid", defer_build=True)


class JobMeta(_Model):
    """The ``job:`` block; every member optional (the id is derived from the path)."""

    id: str | None = None
    name: str | None = None
    summary: str | None = None

    @field_validator("id", "name", "summary", mode="before")
    @classmethod
    def _textual(cls, value: Any) -> Any:
        # ``id: 2024`` is a plausible id; YAML makes it an int.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        if value == "":
            return None
        return value


class ContainerResources(_Model):
    """``container.resources``; values are kept as given (``"500m"``, ``0.5``, ``"512Mi"``)."""

    cpu: str | int | float | None = None
    memory: str | int | float | None = None

    @field_validator("cpu", "memory", mode="before")
    @classmethod
    def _quantity(cls, value: Any) -> Any:
        if (
            value is None
            or isinstance(value, str)
            or (isinstance(value, int | float) and not isinstance(value, bool))
        ):
            return value
        raise PydanticCustomError(
            "quantity", "must be a string or a number (got {value})", {"value": show(value)}
        )


class ContainerConfig(_Model):
    """A ``container:`` block, at job level or on a step (then merged with :meth:`overlay`)."""

    image: str | None = None
    network: str | None = None
    rootfs_writable: bool = False
    capabilities: list[str] = Field(default_factory=list)
    resources: ContainerResources | None = None
    extra_args: list[str] = Field(default_factory=list)

    def overlay(self, override: ContainerConfig | None) -> ContainerConfig:
        """This config with every member *written* in ``override`` replacing ours.

        Only members present in the override's YAML count, so a step that says
        nothing about ``rootfs_writable`` keeps the job's value (the reference
        replaced it with ``false``).
        """
        if override is None:
            return self
        update: dict[str, Any] = {}
        for name in override.model_fields_set:
            value = getattr(override, name)
            if name == "resources" and self.resources is not None and value is not None:
                value = self.resources.model_copy(
                    update={key: getattr(value, key) for key in value.model_fields_set}
                )
            update[name] = value
        return self.model_copy(update=update)


class ErrorHandling(_Model):
    """What a failing step does to the run: ``abort`` (default), ``continue``, ``retry``."""

    policy: Literal["abort", "continue", "retry"] = "abort"
    retries: int = Field(default=0, ge=0)
    retry_backoff: float = 0.0

    @field_validator("policy", mode="before")
    @classmethod
    def _fold_policy(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("retry_backoff", mode="before")
    @classmethod
    def _backoff(cls, value: Any) -> Any:
        return duration_validator(value, allow_zero=True)

    def to_json(self) -> dict[str, Any]:
        """``error_handling`` of a plan: every member (what ``model_dump`` says, without
        building a serializer: a run's plan is journaled, and a run from the run index
        builds none of pydantic's schemas, nor loads what the first one needs)."""
        return {"policy": self.policy, "retries": self.retries,
                "retry_backoff": self.retry_backoff}


class Step(_Model):
    """One step of a ``composition: steps`` job.

    A step without ``id`` gets the stem of its script's file name
    (``scripts/build.sh`` → ``build``): it reads well in events and logs, and a
    clash is reported with a hint to set ``id``.
    """

    id: str = ""
    name: str | None = None
    script: str
    needs: list[str] = Field(default_factory=list)
    container: ContainerConfig | None = None
    #: Not allowed (steps run with the job's executor), yet the job stays a job:
    #: planning it is refused with E_POLICY, as the reference refuses it (§8.4).
    executor: Any = None

    _id_derived: bool = PrivateAttr(default=False)

    @property
    def sets_executor(self) -> bool:
        """The step names an executor of its own (``executor: ""``/``null`` name none)."""
        return self.executor is not None and str(self.executor).strip() != ""

    @field_validator("needs", mode="before")
    @classmethod
    def _needs_list(cls, value: Any) -> Any:
        # ``needs: build`` is an obvious shorthand for ``needs: [build]``.
        return [value] if isinstance(value, str) else value

    @field_validator("id", "name", mode="before")
    @classmethod
    def _textual(cls, value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @model_validator(mode="after")
    def _check(self) -> Step:
        problems: list[tuple[Loc, str]] = []
        if not self.script.strip():
            problems.append((("script",), "must not be empty"))
        elif not self.id:
            derived = PurePosixPath(self.script).stem
            if not _ID_RE.fullmatch(derived):
                problems.append(
                    (
                        ("id",),
                        "required: no valid id can be made from the script name "
                        f"{show(self.script)}",
                    )
                )
            else:
                # Frozen model: the derived id is written once, during validation.
                object.__setattr__(self, "id", derived)
                self._id_derived = True
        if self.id and not _ID_RE.fullmatch(self.id):
            problems.append(
                (("id",), f"{show(self.id)} is not a valid step id (letters, digits, '_', '.', '-')")
            )
        if problems:
            raise spec_error(problems)
        return self

    @property
    def id_derived(self) -> bool:
        """Whether :attr:`id` was derived from the script name (not written)."""
        return self._id_derived


class JobConfig(_Model):
    """A validated ``config.d/config.yaml``.

    ``args`` is the one list of arguments whichever form the file used
    (``argspec.args`` or the legacy ``arguments:`` map, file order kept).
    """

    job: JobMeta | None = None
    interpreter: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    executor: Literal["proc", "container"] = "proc"
    container: ContainerConfig | None = None
    env_inheritance: bool = False
    timeout: float | None = None
    #: At most this many runs of this job execute at once (per server); the
    #: others wait ``queued``.
    concurrency: int | None = Field(default=None, ge=1)
    #: The labels a replica of a cluster must have to run it (``:serve --labels``);
    #: empty: any replica. Outside a cluster it means nothing (docs/scale-out.md).
    runs_on: list[str] = Field(default_factory=list)
    error_handling: ErrorHandling = Field(default_factory=ErrorHandling)
    composition: Literal["steps"] | None = None
    steps: list[Step] = Field(default_factory=list, validate_default=True)
    args: list[Arg] = Field(default_factory=list)
    #: When the job runs by itself (after ``args``: each entry's ``args`` are checked
    #: against them).
    schedule: list[ScheduleEntry] = Field(default_factory=list)
    #: Who is told of this job's runs, and when (flwd/jobs/_notify.py, docs/automation.md).
    notify: list[NotifyRule] = Field(default_factory=list)
    #: ``hooks:`` entries as written: flwd.hooks checks them (a bad one is reported and
    #: not served; the job itself stays usable).
    hooks: list[Any] = Field(default_factory=list)

    @field_validator("runs_on", mode="before")
    @classmethod
    def _runs_on(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]  # runs_on: linux
        if not isinstance(value, list):
            return value  # the list type check reports it
        problems: list[tuple[Loc, str]] = []
        labels: list[str] = []
        for index, item in enumerate(value):
            label = item.strip().lower() if isinstance(item, str) else None
            if label is None or not LABEL_RE.fullmatch(label):
                problems.append(((index,), f"{show(item)} is not a valid label (lower-case "
                                           "letters, digits, '_', '.', '-'; as in :serve --labels)"))
            elif label not in labels:
                labels.append(label)
        if problems:
            raise spec_error(problems)
        return labels

    @field_validator("hooks", mode="before")
    @classmethod
    def _hooks(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("interpreter", mode="before")
    @classmethod
    def _interpreter(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator("env", mode="before")
    @classmethod
    def _env(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict):
            return value  # the dict type check reports it
        env: dict[str, str] = {}
        problems: list[tuple[Loc, str]] = []
        for key, item in value.items():
            name = str(key)
            if not isinstance(key, str) or not _ENV_NAME_RE.fullmatch(key):
                problems.append(((name,), "not a valid environment variable name"))
            elif isinstance(item, bool):
                env[key] = "true" if item else "false"
            elif isinstance(item, int | float | str):
                # Numbers are written as YAML numbers all the time (PORT: 8080).
                env[key] = str(item)
            else:
                problems.append(((name,), f"must be a string (got {show(item)})"))
        if problems:
            raise spec_error(problems)
        return env

    @field_validator("executor", mode="before")
    @classmethod
    def _executor(cls, value: Any) -> Any:
        if value is None:
            return "proc"
        if isinstance(value, str):
            folded = value.strip().lower()
            # "shell" is the reference's older name of the process executor.
            return "proc" if folded in ("", "shell") else folded
        return value

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> Any:
        return duration_validator(value, allow_zero=False)

    @field_validator("composition", mode="before")
    @classmethod
    def _composition(cls, value: Any) -> Any:
        if isinstance(value, str):
            folded = value.strip().lower()
            if not folded:
                return None
            if folded != "steps":
                raise PydanticCustomError(
                    "composition", "{value} is not supported (only 'steps')", {"value": show(value)}
                )
            return folded
        return value

    @field_validator("steps", mode="after")
    @classmethod
    def _dag(cls, steps: list[Step], info: ValidationInfo) -> list[Step]:
        if info.data.get("composition") != "steps":
            return steps
        problems = _dag_problems(
            steps,
            executor=info.data.get("executor"),
            job_container=info.data.get("container"),
        )
        if problems:
            raise spec_error(problems)
        return steps

    @field_validator("args", mode="after")
    @classmethod
    def _unique_args(cls, args: list[Arg]) -> list[Arg]:
        problems: list[tuple[Loc, str]] = []
        # Two names collide when they give the same flag or the same ARG_ variable.
        seen: dict[str, str] = {}
        for index, arg in enumerate(args):
            key = arg.name.lower().replace("-", "_")
            if key in seen:
                other = seen[key]
                what = (
                    "duplicate argument"
                    if other == arg.name
                    else f"collides with '{other}' (same flag/ARG_ name)"
                )
                problems.append(((index, "name"), f"'{arg.name}': {what}"))
            else:
                seen[key] = arg.name
        booleans = {arg.name.replace("_", "-") for arg in args if arg.type == "boolean"}
        for index, arg in enumerate(args):
            dashed = arg.name.replace("_", "-")
            if dashed.startswith("no-") and dashed[3:] in booleans:
                problems.append(
                    (
                        (index, "name"),
                        f"'{arg.name}' clashes with --{dashed} (the negation of a boolean)",
                    )
                )
        if problems:
            raise spec_error(problems)
        return args

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedules(cls, value: Any) -> Any:
        return check_schedules(value, _message)

    @field_validator("schedule", mode="after")
    @classmethod
    def _schedule_args(cls, entries: list[ScheduleEntry], info: ValidationInfo
                       ) -> list[ScheduleEntry]:
        problems = schedule_problems(entries, info.data.get("args"))
        if problems:
            raise spec_error(problems)
        return entries

    @model_validator(mode="after")
    def _executor_fits(self) -> JobConfig:
        problems: list[tuple[Loc, str]] = []
        container_form = (self.interpreter or "").lower().startswith("container:")
        if self.is_dag and container_form:
            problems.append(
                (
                    ("interpreter",),
                    "the 'container:' form is not allowed with composition: steps; use executor: container",
                )
            )
        if (
            not self.is_dag
            and self.executor == "container"
            and not container_form
            and (self.container is None or not self.container.image)
        ):
            problems.append((("container", "image"), "required when executor is container"))
        if problems:
            raise spec_error(problems)
        return self

    # -- derived views ---------------------------------------------------------------

    @property
    def is_dag(self) -> bool:
        """``composition: steps`` with steps — run :attr:`steps` (in :meth:`step_order`), not
        ``NNN_`` files. Without any step the job runs its ``NNN_`` files, as in the
        reference (§2.6), with a warning (:data:`NO_STEPS`)."""
        return self.composition == "steps" and bool(self.steps)

    def step_order(self) -> list[Step]:
        """Steps in an order that honours ``needs``; ties keep declaration order.

        Validation has already rejected cycles and unknown ``needs``.
        """
        remaining = list(self.steps)
        done: set[str] = set()
        ordered: list[Step] = []
        while remaining:
            for step in remaining:
                if all(need in done for need in step.needs):
                    ordered.append(step)
                    done.add(step.id)
                    remaining.remove(step)
                    break
            else:  # pragma: no cover - cycles are rejected at validation
                raise AssertionError("cycle in validated steps")
        return ordered

    def require_one_executor(self, path: str) -> None:
        """Refuse a ``composition: steps`` job a step of which names its own executor.

        Such a config is still a job (it is listed, with a warning); planning
        it is what fails, as in the reference (§8.4: ``mixed executors``).

        Raises:
            MixedExecutors: ``errors`` names every such step.
        """
        refused = ([index for index, step in enumerate(self.steps) if step.sets_executor]
                   if self.is_dag else [])
        if refused:
            raise MixedExecutors(
                f"{path}: steps[{refused[0]}]: {_STEP_EXECUTOR}",
                hint="remove 'executor' from the steps; the job's executor runs them all",
                errors=[{"arg": f"steps[{index}].executor", "message": _STEP_EXECUTOR}
                        for index in refused])

    def container_for(self, step: Step | None = None) -> ContainerConfig | None:
        """The job's container block with the step's block laid over it."""
        if step is None or step.container is None:
            return self.container
        return (self.container or ContainerConfig()).overlay(step.container)

    def argspec_json(self) -> dict[str, Any]:
        """``{"args": [Arg JSON...]}`` — the ``effective_argspec`` of a plan."""
        return {"args": [arg.to_json() for arg in self.args]}


def _dag_problems(
    steps: list[Step], *, executor: str | None, job_container: ContainerConfig | None
) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    index_of: dict[str, int] = {}
    for index, step in enumerate(steps):
        if step.id in index_of:
            note = " (derived from the script name; set id)" if step.id_derived else ""
            problems.append(
                (
                    (index, "id"),
                    f"duplicate step id {show(step.id)} (also steps[{index_of[step.id]}]){note}",
                )
            )
        else:
            index_of[step.id] = index
    for index, step in enumerate(steps):
        for position, need in enumerate(step.needs):
            if need not in index_of:
                hint = did_you_mean(need, index_of)
                problems.append(
                    (
                        (index, "needs", position),
                        f"unknown step {show(need)}" + (f"; {hint}" if hint else ""),
                    )
                )
        if step.container is not None and executor == "proc":
            problems.append(((index, "container"), "only allowed when executor is container"))
        if executor == "container":
            image = (step.container.image if step.container else None) or (
                job_container.image if job_container else None
            )
            if not image:
                problems.append(
                    ((index,), "no container image: set container.image on the job or on the step")
                )
    problems.extend(((), f"cycle {' -> '.join(cycle)}") for cycle in _cycles(steps))
    return problems


def _cycles(steps: list[Step]) -> list[list[str]]:
    """Every cycle met by a depth-first walk in declaration order, each reported once."""
    needs = {step.id: [need for need in step.needs] for step in steps}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        path.append(node)
        for need in needs.get(node, []):
            if need not in needs:
                continue  # reported as an unknown step
            if state.get(need) == 1:
                cycle = [*path[path.index(need) :], need]
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    cycles.append(cycle)
            elif need not in state:
                visit(need, path)
        path.pop()
        state[node] = 2

    for step in steps:
        if step.id not in state:
            visit(step.id, [])
    return cycles


# -- the raw document: known keys, unknown-key warnings ----------------------------------


@dataclass(frozen=True)
class _Each:
    """A list whose items are mappings of ``shape``."""

    shape: Mapping[str, Any]


@dataclass(frozen=True)
class _Values:
    """A mapping from free names to mappings of ``shape``."""

    shape: Mapping[str, Any]


_RESOURCES: Final = {"cpu": None, "memory": None}
_CONTAINER: Final = {
    "image": None,
    "network": None,
    "rootfs_writable": None,
    "capabilities": None,
    "resources": _RESOURCES,
    "extra_args": None,
}
_ARG: Final = {
    key: None
    for key in (
        "name", "type", "description", "required", "default", "enum", "items_type",
        "items_enum", "value_type", "minimum", "maximum", "minLength", "maxLength",
        "pattern", "format", "secret",
    )
}  # fmt: skip
_LEGACY_TYPES: Final = {
    "bool": "boolean",
    "int": "integer",
    "str": "string",
    "float": "number",
    "list": "array",
    "dict": "object",
    "map": "object",
}
_LEGACY_ARG: Final = {**{key: None for key in _ARG if key != "name"}, "choices": None}
_STEP: Final = {
    "id": None,
    "name": None,
    "script": None,
    "needs": None,
    "container": _CONTAINER,
    "executor": None,  # known: planning refuses it with a clear message (E_POLICY)
}
_TOP: Final[Mapping[str, Any]] = {
    "version": None,
    "job": {"id": None, "name": None, "summary": None},
    "jobs": None,
    "aliases": None,
    "interpreter": None,
    "env": None,
    "executor": None,
    "container": _CONTAINER,
    "env_inheritance": None,
    "timeout": None,
    "concurrency": None,
    "runs_on": None,
    "error_handling": {"policy": None, "retries": None, "retry_backoff": None},
    "composition": None,
    "steps": _Each(_STEP),
    "argspec": {"args": _Each(_ARG)},
    "arguments": _Values(_LEGACY_ARG),
    # Each entry is checked whole (an unknown key there is an error: a misspelt
    # timezone: must not fire the job at another hour).
    "schedule": None,
    # Checked whole too: a misspelt secret_env must not send unsigned notifications.
    "notify": None,
    "hooks": None,  # checked by flwd.hooks
}


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _prune(data: Any, shape: Mapping[str, Any], path: str, warnings: list[str]) -> Any:
    """``data`` without the keys ``shape`` does not know, each reported as a warning.

    Non-mappings are returned as they are: pydantic reports the type error with
    the exact path.
    """
    if not isinstance(data, dict):
        return data
    kept: dict[Any, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str) or key not in shape:
            hint = did_you_mean(clip(str(key)), shape)
            note = f"ignored; {hint}" if hint else "ignored"
            prefix = f"{path}: " if path else ""
            warnings.append(f"{prefix}unknown key {show(str(key))} ({note})")
            continue
        sub = shape[key]
        where = _join(path, key)
        if isinstance(sub, Mapping):
            value = _prune(value, sub, where, warnings)
        elif isinstance(sub, _Each) and isinstance(value, list):
            value = [
                _prune(item, sub.shape, _join(where, i), warnings) for i, item in enumerate(value)
            ]
        elif isinstance(sub, _Values) and isinstance(value, dict):
            value = {
                name: _prune(item, sub.shape, _join(where, str(name)), warnings)
                for name, item in value.items()
            }
        kept[key] = value
    return kept


@dataclass
class _ArgSource:
    """Where each entry of the model's ``args`` list came from in the file."""

    locs: list[Loc] = field(default_factory=list)
    used_choices: set[int] = field(default_factory=set)
    legacy: bool = False

    def remap(self, loc: Loc) -> Loc:
        if not loc or loc[0] != "args":
            return loc
        if len(loc) == 1 or not isinstance(loc[1], int) or loc[1] >= len(self.locs):
            return ("arguments",) if self.legacy else ("argspec", "args", *loc[1:])
        index = loc[1]
        rest = loc[2:]
        if rest and rest[0] == "enum" and index in self.used_choices:
            rest = ("choices", *rest[1:])
        return (*self.locs[index], *rest)


def _collect_args(
    data: dict[str, Any], problems: list[tuple[Loc, str]]
) -> tuple[list[Any], _ArgSource]:
    """One ``args`` list from ``argspec.args`` or, failing that, legacy ``arguments``."""
    source = _ArgSource()
    argspec = data.pop("argspec", None)
    legacy = data.pop("arguments", None)
    spec_args: Any = []
    if argspec is not None:
        if not isinstance(argspec, dict):
            problems.append(
                (("argspec",), f"must be a mapping with an 'args' list (got {show(argspec)})")
            )
        else:
            spec_args = argspec.get("args") or []
            if not isinstance(spec_args, list):
                problems.append((("argspec", "args"), f"must be a list (got {show(spec_args)})"))
                spec_args = []
    if spec_args:
        if legacy:
            problems.append(
                (
                    ("arguments",),
                    "argspec.args and arguments are both given; keep only argspec.args",
                )
            )
        source.locs = [("argspec", "args", index) for index in range(len(spec_args))]
        return list(spec_args), source

    if legacy is None:
        return [], source
    if not isinstance(legacy, dict):
        problems.append(
            (("arguments",), f"must be a mapping of argument names (got {show(legacy)})")
        )
        return [], source
    source.legacy = True
    args: list[Any] = []
    for name, spec in legacy.items():
        index = len(args)
        source.locs.append(("arguments", str(name)))
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            args.append(spec)  # pydantic reports "must be a mapping" at arguments.<name>
            continue
        item = dict(spec)
        if "type" in item and isinstance(item["type"], str):
            item["type"] = _LEGACY_TYPES.get(item["type"], item["type"])
        if "choices" in item:
            if "enum" in item:
                problems.append(
                    (("arguments", str(name), "choices"), "give either choices or enum")
                )
            item["enum"] = item.pop("choices")
            source.used_choices.add(index)
        item = {"name": name, **item}
        args.append(item)
    return args, source


# -- parse_config -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedConfig:
    """A valid config and the warnings met on the way (unknown keys, ignored blocks)."""

    config: JobConfig
    warnings: list[str]


def _path_text(loc: Loc) -> str:
    text = ""
    for part in loc:
        text = _join(text, part)
    return text


def _message(error: Mapping[str, Any]) -> str:
    """A short, lower-case message for one pydantic error."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = show(error.get("input"))
    simple = {
        "missing": "required",
        "extra_forbidden": "unknown key",
        "string_type": f"must be a string (got {got})",
        "int_type": f"must be an integer (got {got})",
        "int_parsing": f"must be an integer (got {got})",
        "int_from_float": f"must be an integer (got {got})",
        "float_type": f"must be a number (got {got})",
        "float_parsing": f"must be a number (got {got})",
        "bool_type": f"must be true or false (got {got})",
        "bool_parsing": f"must be true or false (got {got})",
        "list_type": f"must be a list (got {got})",
        "dict_type": f"must be a mapping (got {got})",
        "model_type": f"must be a mapping (got {got})",
        "model_attributes_type": f"must be a mapping (got {got})",
    }
    if kind in simple:
        return simple[kind]
    if kind == "literal_error":
        return f"{got} is not one of: {ctx.get('expected', '')}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')} (got {got})"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    message = str(error["msg"])
    return message[:1].lower() + message[1:]


def _located(exc: ValidationError, source: _ArgSource) -> list[tuple[str, str]]:
    located: list[tuple[str, str]] = []
    for error in exc.errors():
        loc: Loc = tuple(error["loc"])
        if error["type"] == SPEC_ERROR:
            for sub, message in (error.get("ctx") or {}).get("problems", []):
                located.append((_path_text(source.remap((*loc, *sub))), message))
        else:
            located.append((_path_text(source.remap(loc)), _message(error)))
    return located


#: Problems listed per config (the count of the rest is given); a message or a
#: field path is cut to this many characters. Whatever a validator quotes, what
#: leaves parse_config is bounded.
_MAX_PROBLEMS: Final = 50
_MAX_MESSAGE: Final = 300


def _invalid(
    path: str, problems: list[tuple[str, str]], *, too_large: bool = False
) -> ConfigInvalid:
    shown = [(clip(name, _MAX_MESSAGE), clip(message, _MAX_MESSAGE))
             for name, message in problems[:_MAX_PROBLEMS]]
    if len(problems) > _MAX_PROBLEMS:
        shown.append(("", f"{len(problems) - _MAX_PROBLEMS} more problems not listed"))
    first_field, first_message = shown[0]
    where = f"{first_field}: " if first_field else ""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    error = ConfigTooLarge if too_large else ConfigInvalid
    return error(
        f"{path}: {where}{first_message}{more}",
        hint=("keep the file under the limits of docs/jobs.md#limits" if too_large
              else "fix the file; every failing field is listed in errors"),
        errors=[{"arg": name, "message": message} for name, message in shown],
        path=path,
    )


def parse_config(text: str, *, path: str) -> ParsedConfig:
    """Validate the text of a ``config.d/config.yaml``.

    Args:
        text: the YAML document.
        path: how to name the file in messages (e.g. ``scripts/x/config.d/config.yaml``).

    Raises:
        ConfigInvalid: malformed YAML, an empty or non-mapping document, or any
            invalid field. ``errors`` lists every failing field by its path in the
            file (``argspec.args[0].type``); ``detail`` names the file and the first.
        ConfigTooLarge: the document is over a limit of :data:`flwd.jobs.CONFIG_LIMITS`
            (size, expansion through aliases, depth; see docs/jobs.md).
    """
    try:
        data = load_yaml(text)
    except YamlRefused as exc:
        raise _invalid(path, [("", str(exc))], too_large=exc.limit) from None
    if data is None:
        raise _invalid(path, [("", "empty config: expected a mapping of settings")])
    if not isinstance(data, dict):
        raise _invalid(path, [("", f"expected a mapping of settings (got {show(data)})")])

    warnings: list[str] = []
    if "notify" in data:
        data = {**data, "notify": normalize_notify(data["notify"])}
    try:
        pruned = _prune(data, _TOP, "", warnings)
        if "jobs" in pruned:
            warnings.append("'jobs' is not supported: one job per config.d/config.yaml (ignored)")
        for key in ("version", "jobs", "aliases"):
            pruned.pop(key, None)
        early: list[tuple[Loc, str]] = []
        pruned["args"], source = _collect_args(pruned, early)
        problems = [(_path_text(loc), message) for loc, message in early]
        config: JobConfig | None = None
        try:
            config = JobConfig.model_validate(pruned)
        except ValidationError as exc:
            problems.extend(_located(exc, source))
    except RecursionError:
        raise _invalid(path, [("", "the document is nested too deeply")]) from None
    if problems or config is None:
        raise _invalid(path, problems)

    if config.steps and not config.is_dag:
        warnings.append(STEPS_IGNORED)
    elif config.composition == "steps" and not config.steps:
        warnings.append(NO_STEPS)
    elif config.is_dag:
        warnings.extend(f"steps[{index}].executor: {_STEP_EXECUTOR} (the job cannot "
                        "be planned or run: E_POLICY)"
                        for index, step in enumerate(config.steps) if step.sets_executor)
    container_form = (config.interpreter or "").lower().startswith("container:")
    if config.container is not None and config.executor == "proc" and not container_form:
        warnings.append("container: ignored because executor is proc")
    if len(warnings) > _MAX_PROBLEMS:
        rest = len(warnings) - _MAX_PROBLEMS
        warnings = [*warnings[:_MAX_PROBLEMS], f"{rest} more warnings not listed"]
    return ParsedConfig(config=config, warnings=warnings)
