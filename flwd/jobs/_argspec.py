"""The :class:`Arg` model (one job argument) and the value checks shared by
spec validation (defaults, enums) and binding (values given by a user).

Keeping both uses on the same functions guarantees that a default accepted when
the config is loaded is also a value the binder accepts, and that the messages
read the same in a config error and in an argument error.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any, Final, Literal, get_args

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

ArgType = Literal["string", "integer", "number", "boolean", "array", "object"]
ItemType = Literal["string", "integer", "number", "boolean"]

ARG_TYPES: Final[tuple[str, ...]] = get_args(ArgType)
ITEM_TYPES: Final[tuple[str, ...]] = get_args(ItemType)
SCALAR_TYPES: Final = frozenset(ITEM_TYPES)

#: Names that would shadow the CLI's own flags after a job (``flwd demo --json``).
RESERVED_NAMES: Final = frozenset({"json", "profile", "detach", "debug", "help", "server", "token"})

#: The literal that replaces a secret value wherever a value is shown.
SECRET_MARK: Final = "[secret]"

#: ``format`` values (the reference's; ``""`` means none). ``secret`` changes how a value
#: is handled; ``file`` and ``directory`` are checked when a run is planned, on the host
#: that runs it (:func:`flwd.jobs.path_problems`); ``path`` only documents the value.
FORMATS: Final = ("secret", "path", "file", "directory")
#: The formats that name a filesystem path: string arguments only.
PATH_FORMATS: Final = frozenset({"path", "file", "directory"})

_NAME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")

#: Error type whose ``ctx["problems"]`` carries ``[(loc, message)]`` relative to
#: the failing model, so one validator can report several fields with exact paths.
SPEC_ERROR: Final = "flwd_spec"

Loc = tuple[str | int, ...]

_ARTICLE: Final = {
    "string": "a string",
    "integer": "an integer",
    "number": "a finite number",
    "boolean": "a boolean",
    "array": "a list",
    "object": "a mapping",
}


def spec_error(problems: Sequence[tuple[Loc, str]]) -> PydanticCustomError:
    """A validation error carrying several located problems (see :data:`SPEC_ERROR`)."""
    summary = "; ".join(
        (f"{'.'.join(str(part) for part in loc)}: {message}" if loc else message)
        for loc, message in problems
    )
    return PydanticCustomError(
        SPEC_ERROR, "{summary}", {"summary": summary, "problems": list(problems)}
    )


def show(value: Any, *, secret: bool = False) -> str:
    """A value as it appears inside a message (clipped); a secret is never echoed."""
    if secret:
        return SECRET_MARK
    # Only the first characters are ever shown: render no more than those (a
    # value may be a long string, or a list of a hundred thousand items).
    text = f"'{value[:80]}'" if isinstance(value, str) else _preview(value, 81)
    return text if len(text) <= 80 else text[:79] + "…"


def _preview(value: Any, limit: int) -> str:
    """The start of :func:`plain` ``(value)``, at least ``limit`` characters when it is
    that long, in time proportional to ``limit`` rather than to the value."""
    chunks: list[str] = []
    size = 0
    try:
        for chunk in json.JSONEncoder(ensure_ascii=False, default=str).iterencode(value):
            chunks.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
    except ValueError:  # circular structures from YAML anchors
        return type(value).__name__
    return "".join(chunks)


def plain(value: Any) -> str:
    """A value as a user would type it (``true``, ``5``, ``info``)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except ValueError:  # circular structures from YAML anchors
        return type(value).__name__


def kind_of(value: Any) -> str:
    """The JSON-ish kind of a value, for messages that must not echo it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def is_kind(kind: str, value: Any) -> bool:
    """Whether ``value`` is already of the Python type that models ``kind``.

    ``bool`` is a subclass of ``int`` in Python; it never counts as a number here.
    """
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        if isinstance(value, bool):
            return False
        if isinstance(value, float):
            return math.isfinite(value)
        return isinstance(value, int)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    return False


def same_value(left: Any, right: Any) -> bool:
    """Equality that does not confuse ``True`` with ``1`` (enum membership)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    if isinstance(left, str) != isinstance(right, str):
        return False
    try:
        return bool(left == right)
    except Exception:  # exotic YAML values; they are never equal to a scalar
        return False


def _one_of(value: Any, choices: Sequence[Any], *, secret: bool, what: str = "") -> str | None:
    if any(same_value(value, choice) for choice in choices):
        return None
    listed = ", ".join(plain(choice) for choice in choices)
    return f"{what}{show(value, secret=secret)} is not one of: {listed}"


class Arg(BaseModel):
    """One argument of a job, as declared in ``argspec.args`` (or legacy ``arguments``).

    ``default`` distinguishes "absent" from a value: use :attr:`has_default`, not
    ``default is None``. An explicit ``default: null`` means "no default" (YAML
    writes an empty value as null, and people mean "nothing" by it).
    """

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid", defer_build=True)

    name: str
    type: ArgType = "string"
    description: str | None = None
    required: bool = False
    default: Any = None
    enum: list[Any] | None = None
    items_type: ItemType = "string"
    items_enum: list[Any] | None = None
    value_type: ItemType = "string"
    minimum: int | float | None = None
    maximum: int | float | None = None
    # YAML/JSON say minLength/maxLength; Python callers use the snake_case name
    # (a plain ``alias`` would make the constructor take ``minLength``).
    min_length: int | None = Field(
        default=None, validation_alias=AliasChoices("minLength", "min_length"), ge=0
    )
    max_length: int | None = Field(
        default=None, validation_alias=AliasChoices("maxLength", "max_length"), ge=0
    )
    pattern: str | None = None
    format: str | None = None
    secret: bool = False

    @field_validator("name", mode="before")
    @classmethod
    def _check_name(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value  # strict str validation reports the type
        if not _NAME_RE.fullmatch(value):
            raise PydanticCustomError(
                "arg_name",
                "'{value}' is not a valid argument name (a letter, then letters, digits, '_' or '-')",
                {"value": value},
            )
        if value.lower() in RESERVED_NAMES:
            raise PydanticCustomError(
                "arg_name",
                "'{value}' is reserved (it is a flag of flwd itself: {reserved})",
                {"value": value, "reserved": ", ".join(sorted(RESERVED_NAMES))},
            )
        return value

    @field_validator("type", mode="before")
    @classmethod
    def _check_type(cls, value: Any) -> Any:
        return _choice(value, ARG_TYPES, "type")

    @field_validator("items_type", "value_type", mode="before")
    @classmethod
    def _check_item_type(cls, value: Any) -> Any:
        return _choice(value, ITEM_TYPES, "item type")

    @field_validator("minimum", "maximum", mode="before")
    @classmethod
    def _check_bound(cls, value: Any) -> Any:
        # Strict ``int | float`` would report two errors (one per union member).
        if value is None or is_kind("number", value):
            return value
        raise PydanticCustomError(
            "number", "must be a number (got {value})", {"value": show(value)}
        )

    @model_validator(mode="after")
    def _check_spec(self) -> Arg:
        problems = spec_problems(self)
        if problems:
            raise spec_error(problems)
        return self

    # -- derived views ---------------------------------------------------------------

    @property
    def has_default(self) -> bool:
        """A default was given (and is not null)."""
        return "default" in self.model_fields_set and self.default is not None

    @property
    def is_secret(self) -> bool:
        return self.secret or self.format == "secret"

    @property
    def flag(self) -> str:
        """The canonical flag, spelled exactly like the argument (``--secret_token``)."""
        return f"--{self.name}"

    @property
    def flag_names(self) -> tuple[str, ...]:
        """Flag spellings accepted on the CLI (without ``--``): the name, and ``_``→``-``."""
        dashed = self.name.replace("_", "-")
        return (self.name,) if dashed == self.name else (self.name, dashed)

    @property
    def env_name(self) -> str:
        """``ARG_<NAME>``: upper-cased, ``-`` → ``_``."""
        return "ARG_" + self.name.upper().replace("-", "_")

    def to_json(self) -> dict[str, Any]:
        """The Arg JSON of plans and ``GET /jobs``; empty members are omitted."""
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.format:
            out["format"] = self.format
        if self.is_secret:
            # Also for ``format: secret``: one member says it, whichever way it was written.
            out["secret"] = True
        if self.required:
            out["required"] = True
        if self.has_default:
            out["default"] = self.default
        if self.description:
            out["description"] = self.description
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.type == "array":
            out["items_type"] = self.items_type
            if self.items_enum is not None:
                out["items_enum"] = list(self.items_enum)
        if self.type == "object":
            out["value_type"] = self.value_type
        for key, value in (
            ("minimum", self.minimum),
            ("maximum", self.maximum),
            ("minLength", self.min_length),
            ("maxLength", self.max_length),
            ("pattern", self.pattern),
        ):
            if value is not None:
                out[key] = value
        return out


def _choice(value: Any, choices: tuple[str, ...], what: str) -> Any:
    if isinstance(value, str) and value in choices:
        return value
    raise PydanticCustomError(
        "arg_choice",
        "{value} is not a valid {what} ({choices})",
        {"value": show(value), "what": what, "choices": ", ".join(choices)},
    )


def spec_problems(arg: Arg) -> list[tuple[Loc, str]]:
    """Everything wrong with an argument declaration, each with the field it is about.

    Constraints that do not apply to the argument's type are errors rather than
    silently unused: a ``pattern`` on an integer is a mistake worth reporting.
    """
    problems: list[tuple[Loc, str]] = []
    given = arg.model_fields_set
    numeric = arg.type in ("integer", "number")

    if arg.is_secret and arg.type != "string":
        problems.append(
            (("secret" if arg.secret else "format",), "secret arguments must be of type string")
        )
    if arg.is_secret and arg.has_default:
        problems.append((("default",), "a secret argument cannot have a default"))
    if arg.format and arg.format not in FORMATS:
        # An unknown format would be silently ignored: a typo (or a check the
        # author expects and flwd does not make) must show.
        problems.append((("format",), f"{show(arg.format)} is not a valid format "
                                      f"(use one of: {', '.join(FORMATS)})"))
    elif arg.format in PATH_FORMATS and arg.type != "string":
        problems.append((("format",), f"format {arg.format} only applies to string arguments"))

    if arg.enum is not None:
        if arg.type not in ("string", "integer", "number"):
            hint = " (use items_enum for arrays)" if arg.type == "array" else ""
            problems.append(
                (("enum",), f"enum applies to string, integer and number arguments{hint}")
            )
        elif not arg.enum:
            problems.append((("enum",), "must not be empty"))
    for field, applies, kinds in (
        ("items_type", arg.type == "array", "array"),
        ("items_enum", arg.type == "array", "array"),
        ("value_type", arg.type == "object", "object"),
        ("minimum", numeric, "integer and number"),
        ("maximum", numeric, "integer and number"),
        ("min_length", arg.type == "string", "string"),
        ("max_length", arg.type == "string", "string"),
        ("pattern", arg.type == "string", "string"),
    ):
        if field in given and getattr(arg, field) is not None and not applies:
            shown = {"min_length": "minLength", "max_length": "maxLength"}.get(field, field)
            problems.append(((shown,), f"only applies to {kinds} arguments"))
    if arg.items_enum is not None and not arg.items_enum:
        problems.append((("items_enum",), "must not be empty"))

    if arg.minimum is not None and arg.maximum is not None and arg.minimum > arg.maximum:
        problems.append((("minimum",), f"must not be greater than maximum ({plain(arg.maximum)})"))
    if (
        arg.min_length is not None
        and arg.max_length is not None
        and arg.min_length > arg.max_length
    ):
        problems.append((("minLength",), f"must not be greater than maxLength ({arg.max_length})"))
    if arg.pattern is not None:
        try:
            re.compile(arg.pattern)
        except (re.error, RecursionError, OverflowError) as exc:
            problems.append((("pattern",), f"invalid regular expression: {exc}"))
    if problems:
        # Checking values against a broken spec would only add noise.
        return problems

    if arg.enum is not None:
        for index, choice in enumerate(arg.enum):
            for message in value_problems(arg, choice, check_enum=False):
                problems.append((("enum", index), message))
    if arg.type == "array" and arg.items_enum is not None:
        for index, choice in enumerate(arg.items_enum):
            if not is_kind(arg.items_type, choice):
                problems.append(
                    (
                        ("items_enum", index),
                        f"must be {_ARTICLE[arg.items_type]} (got {show(choice)})",
                    )
                )
    if arg.has_default:
        for message in value_problems(arg, arg.default):
            problems.append((("default",), message))
    return problems


def value_problems(arg: Arg, value: Any, *, check_enum: bool = True) -> list[str]:
    """Type and constraint problems of a typed value (a default, or a bound value)."""
    problems = type_problems(arg, value)
    if not problems:
        problems = constraint_problems(arg, value, check_enum=check_enum)
    return problems


def type_problems(arg: Arg, value: Any) -> list[str]:
    """Whether ``value`` has the argument's type (items and object values included)."""
    secret = arg.is_secret
    if not is_kind(arg.type, value):
        got = kind_of(value) if secret else show(value)
        return [f"must be {_ARTICLE[arg.type]} (got {got})"]
    problems: list[str] = []
    if arg.type == "array":
        for item in value:
            if not is_kind(arg.items_type, item):
                problems.append(f"item {show(item)} is not {_ARTICLE[arg.items_type]}")
    elif arg.type == "object":
        for key, item in value.items():
            if not isinstance(key, str) or not key.strip():
                problems.append(f"key {show(key)} must be a non-empty string")
            elif not is_kind(arg.value_type, item):
                problems.append(
                    f"value of '{key}' must be {_ARTICLE[arg.value_type]} (got {show(item)})"
                )
    return problems


def constraint_problems(arg: Arg, value: Any, *, check_enum: bool = True) -> list[str]:
    """enum, items_enum, minimum/maximum, minLength/maxLength and pattern.

    ``value`` must already have the argument's type (see :func:`type_problems`).
    A secret value is never echoed in a message.
    """
    secret = arg.is_secret
    problems: list[str] = []
    if check_enum and arg.enum is not None and arg.type in ("string", "integer", "number"):
        problem = _one_of(value, arg.enum, secret=secret)
        if problem:
            problems.append(problem)
    if arg.type == "array" and arg.items_enum is not None:
        for item in value:
            problem = _one_of(item, arg.items_enum, secret=False, what="item ")
            if problem:
                problems.append(problem)
    if arg.type in ("integer", "number"):
        if arg.minimum is not None and value < arg.minimum:
            problems.append(f"must be at least {plain(arg.minimum)} (got {plain(value)})")
        if arg.maximum is not None and value > arg.maximum:
            problems.append(f"must be at most {plain(arg.maximum)} (got {plain(value)})")
    if arg.type == "string":
        got = "" if secret else f" (got {len(value)})"
        if arg.min_length is not None and len(value) < arg.min_length:
            problems.append(f"must be at least {arg.min_length} characters long{got}")
        if arg.max_length is not None and len(value) > arg.max_length:
            problems.append(f"must be at most {arg.max_length} characters long{got}")
        if arg.pattern is not None and re.fullmatch(arg.pattern, value) is None:
            subject = "value" if secret else show(value)
            problems.append(f"{subject} does not match pattern '{arg.pattern}'")
    return problems
