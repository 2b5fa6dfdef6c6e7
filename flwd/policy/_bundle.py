"""The policy bundle (``FLWD_POLICY_FILE``) and the quantities it speaks in (sans-IO).

A bundle is a small YAML document::

    verify_signatures: required | permissive | disabled
    allowed_registries: [ghcr.io, "127.0.0.1:5000"]
    ceilings: {cpu: 1000m, memory: 1Gi}
    overrides:
      network: [bridge]
      rootfs_writable: true
      caps: [NET_ADMIN]
      env_inheritance: false
      extra_args: [--hostname]

Unlike the reference, unknown keys and malformed values are errors naming the
key: a typo in a security policy must not silently loosen or tighten it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from flwd.errors import PolicyBundleInvalid, ResourcesInvalid
from flwd.jobs import YamlRefused, clip, load_yaml, read_yaml_file

from ._overrides import OverrideAllowances
from ._profiles import Profile

VerifyMode = Literal["required", "permissive", "disabled"]
VERIFY_MODES: tuple[VerifyMode, ...] = ("required", "permissive", "disabled")
_DEFAULT_VERIFY: dict[str, VerifyMode] = {
    "secure": "required", "permissive": "permissive", "disabled": "disabled"}

_REGISTRY_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$")
_MEMORY_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
_MEMORY_UNITS = {
    "": 1, "b": 1,
    "k": 1 << 10, "ki": 1 << 10, "kib": 1 << 10,
    "m": 1 << 20, "mi": 1 << 20, "mib": 1 << 20,
    "g": 1 << 30, "gi": 1 << 30, "gib": 1 << 30,
    "t": 1 << 40, "ti": 1 << 40, "tib": 1 << 40,
}
#: A container below this cannot even start its init process.
MIN_MEMORY = 6 << 20
#: Podman's and Docker's smallest CPU quota.
MIN_CPU_MILLIS = 10


@dataclass(frozen=True, slots=True)
class Ceilings:
    cpu_millis: int | None = None
    memory_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class PolicyBundle:
    """A parsed bundle; ``PolicyBundle()`` is the empty policy (all defaults)."""

    verify_signatures: VerifyMode | None = None
    #: Lower-cased ``host[:port]``; empty = every registry is allowed.
    allowed_registries: tuple[str, ...] = ()
    ceilings: Ceilings = field(default_factory=Ceilings)
    overrides: OverrideAllowances = field(default_factory=OverrideAllowances)
    #: Where it came from (a path), for messages; None for the empty policy.
    origin: str | None = None

    def verify_mode(self, profile: Profile) -> VerifyMode:
        """The bundle's ``verify_signatures``, else the profile's default."""
        return self.verify_signatures or _DEFAULT_VERIFY[profile]


def parse_cpu(value: object, *, what: str = "cpu") -> int:
    """CPU as millicores: ``"500m"`` → 500, ``"1.5"`` / ``1.5`` → 1500.

    Raises:
        ValueError: not a positive quantity (the message names ``what``).
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{what} must be a quantity like 500m or 1.5 (got {value!r})")
    text = str(value).strip().lower()
    try:
        millis = float(text[:-1]) if text.endswith("m") else float(text) * 1000
    except ValueError:
        raise ValueError(f"{what} {value!r} is not a quantity like 500m or 1.5") from None
    if not math.isfinite(millis) or millis <= 0:
        raise ValueError(f"{what} {value!r} must be greater than zero")
    rounded = round(millis)
    if rounded < MIN_CPU_MILLIS:
        raise ValueError(f"{what} {value!r} is below the smallest CPU quota "
                         f"({MIN_CPU_MILLIS}m)")
    return rounded


def parse_memory(value: object, *, what: str = "memory") -> int:
    """Memory as bytes: ``"512Mi"``, ``"1Gi"``, ``"256m"`` (MiB, like the reference), ``1048576``.

    Raises:
        ValueError: not a positive quantity (the message names ``what``).
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{what} must be a quantity like 512Mi or 1Gi (got {value!r})")
    match = _MEMORY_RE.match(str(value))
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _MEMORY_UNITS:
        raise ValueError(f"{what} {value!r} is not a quantity like 512Mi or 1Gi")
    amount = float(match.group(1)) * _MEMORY_UNITS[unit]
    if not math.isfinite(amount) or amount <= 0:
        raise ValueError(f"{what} {value!r} must be greater than zero")
    if amount < MIN_MEMORY:
        raise ValueError(f"{what} {value!r} is below the {MIN_MEMORY >> 20}Mi a container "
                         "needs to start")
    return int(amount)


def format_memory(amount: int) -> str:
    return f"{amount >> 20}Mi" if amount % (1 << 20) == 0 else f"{amount} bytes"


def format_cpu(millis: int) -> str:
    return f"{millis}m"


def check_resources(cpu: object, memory: object, ceilings: Ceilings
                    ) -> tuple[int | None, int | None]:
    """The container's (millicores, bytes) after the ceilings check.

    A request above a ceiling is refused; a missing request gets the ceiling,
    so a policy with ceilings bounds every container.

    Raises:
        ResourcesInvalid: unparsable, or above a ceiling.
    """
    errors = []
    cpu_millis = memory_bytes = None
    try:
        cpu_millis = parse_cpu(cpu, what="container.resources.cpu") if cpu is not None else None
    except ValueError as exc:
        errors.append({"arg": "container.resources.cpu", "message": str(exc)})
    try:
        memory_bytes = (parse_memory(memory, what="container.resources.memory")
                        if memory is not None else None)
    except ValueError as exc:
        errors.append({"arg": "container.resources.memory", "message": str(exc)})
    if cpu_millis is not None and ceilings.cpu_millis is not None \
            and cpu_millis > ceilings.cpu_millis:
        errors.append({"arg": "container.resources.cpu",
                       "message": f"requested cpu {format_cpu(cpu_millis)} exceeds ceiling "
                                  f"{format_cpu(ceilings.cpu_millis)}"})
    if memory_bytes is not None and ceilings.memory_bytes is not None \
            and memory_bytes > ceilings.memory_bytes:
        errors.append({"arg": "container.resources.memory",
                       "message": f"requested memory {format_memory(memory_bytes)} exceeds "
                                  f"ceiling {format_memory(ceilings.memory_bytes)}"})
    if errors:
        raise ResourcesInvalid(errors[0]["message"], errors=errors,
                               hint="lower container.resources, or raise the ceilings of "
                                    "the policy bundle")
    return (cpu_millis if cpu_millis is not None else ceilings.cpu_millis,
            memory_bytes if memory_bytes is not None else ceilings.memory_bytes)


# -- parsing -----------------------------------------------------------------------------

_TOP = {"verify_signatures", "allowed_registries", "ceilings", "overrides"}
_CEILINGS = {"cpu", "memory"}
_OVERRIDES = {"network", "rootfs_writable", "caps", "env_inheritance", "extra_args"}


def _strings(value: Any, key: str, errors: list[dict[str, str]]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        errors.append({"arg": key, "message": "must be a list of non-empty strings"})
        return ()
    return tuple(v.strip() for v in value)


def _flag(value: Any, key: str, errors: list[dict[str, str]]) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        errors.append({"arg": key, "message": f"must be true or false (got {value!r})"})
        return False
    return value


def _unknown(mapping: Mapping[Any, Any], known: set[str], prefix: str,
             errors: list[dict[str, str]]) -> None:
    for key in mapping:
        if key not in known:
            errors.append({"arg": f"{prefix}{key}",
                           "message": f"unknown key (known: {', '.join(sorted(known))})"})


def parse_bundle(text: str, *, origin: str) -> PolicyBundle:
    """Parse a bundle's YAML text; ``origin`` (a path) is used in messages.

    Raises:
        PolicyBundleInvalid: not YAML, not a mapping, an unknown key or a bad value;
            ``errors`` lists every failing key.
    """
    try:
        # Within a job config's limits (docs/jobs.md#limits): a bundle is a dozen keys.
        data = load_yaml(text) if text.strip() else {}
    except YamlRefused as exc:
        if exc.limit:
            raise PolicyBundleInvalid(f"policy bundle {origin} is refused: {exc.reason}",
                                      hint="a policy bundle is a few keys; see docs/policy.md"
                                      ) from None
        raise PolicyBundleInvalid(f"policy bundle {origin} is not valid YAML: {exc.reason}",
                                  hint="fix the YAML syntax") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyBundleInvalid(f"policy bundle {origin} must be a mapping of keys "
                                  f"(got {type(data).__name__})")
    errors: list[dict[str, str]] = []
    _unknown(data, _TOP, "", errors)
    verify = data.get("verify_signatures")
    mode: VerifyMode | None = None
    if verify is not None:
        folded = str(verify).strip().lower() if isinstance(verify, str) else None
        for candidate in VERIFY_MODES:
            if folded == candidate:
                mode = candidate
        if mode is None:
            errors.append({"arg": "verify_signatures",
                           "message": f"{verify!r} is not required, permissive or disabled"})
    registries = []
    for registry in _strings(data.get("allowed_registries"), "allowed_registries", errors):
        host = registry.lower()
        if not _REGISTRY_RE.match(host):
            errors.append({"arg": "allowed_registries",
                           "message": f"{registry!r} is not a registry host[:port]"})
        registries.append(host)
    ceilings = Ceilings()
    raw_ceilings = data.get("ceilings")
    if raw_ceilings is not None:
        if not isinstance(raw_ceilings, dict):
            errors.append({"arg": "ceilings", "message": "must be a mapping {cpu, memory}"})
        else:
            _unknown(raw_ceilings, _CEILINGS, "ceilings.", errors)
            cpu = memory = None
            try:
                if raw_ceilings.get("cpu") is not None:
                    cpu = parse_cpu(raw_ceilings["cpu"], what="ceilings.cpu")
            except ValueError as exc:
                errors.append({"arg": "ceilings.cpu", "message": str(exc)})
            try:
                if raw_ceilings.get("memory") is not None:
                    memory = parse_memory(raw_ceilings["memory"], what="ceilings.memory")
            except ValueError as exc:
                errors.append({"arg": "ceilings.memory", "message": str(exc)})
            ceilings = Ceilings(cpu, memory)
    overrides = OverrideAllowances()
    raw_overrides = data.get("overrides")
    if raw_overrides is not None:
        if not isinstance(raw_overrides, dict):
            errors.append({"arg": "overrides", "message": "must be a mapping"})
        else:
            _unknown(raw_overrides, _OVERRIDES, "overrides.", errors)
            overrides = OverrideAllowances(
                network=tuple(n.lower() for n in _strings(
                    raw_overrides.get("network"), "overrides.network", errors)),
                rootfs_writable=_flag(raw_overrides.get("rootfs_writable"),
                                      "overrides.rootfs_writable", errors),
                caps=tuple(c.upper() for c in _strings(
                    raw_overrides.get("caps"), "overrides.caps", errors)),
                env_inheritance=_flag(raw_overrides.get("env_inheritance"),
                                      "overrides.env_inheritance", errors),
                extra_args=_strings(raw_overrides.get("extra_args"), "overrides.extra_args",
                                    errors),
            )
            for flag in overrides.extra_args:
                if not flag.startswith("-") or "=" in flag:
                    errors.append({"arg": "overrides.extra_args",
                                   "message": f"{flag!r} is not a flag name like --hostname"})
    if errors:
        # Messages quote the bundle's values: each stays one bounded line.
        errors = [{"arg": clip(e["arg"], 300), "message": clip(e["message"], 300)}
                  for e in errors[:50]]
        first = errors[0]
        raise PolicyBundleInvalid(
            f"policy bundle {origin}: {first['arg']}: {first['message']}", errors=errors,
            hint="see docs/policy.md for the bundle's keys")
    return PolicyBundle(verify_signatures=mode, allowed_registries=tuple(registries),
                        ceilings=ceilings, overrides=overrides, origin=origin)


def find_bundle(env: Mapping[str, str], workspace: Path) -> Path | None:
    """``FLWD_POLICY_FILE``, else ``<workspace>/flwd.policy.yaml`` if it exists, else None.

    Raises:
        PolicyBundleInvalid: ``FLWD_POLICY_FILE`` names no file.
    """
    named = env.get("FLWD_POLICY_FILE")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise PolicyBundleInvalid(f"FLWD_POLICY_FILE={named}: no such file",
                                      hint="point FLWD_POLICY_FILE at the policy bundle, "
                                           "or unset it")
        return path.absolute()
    default = workspace / "flwd.policy.yaml"
    return default if default.is_file() else None


def load_bundle(path: Path | None) -> PolicyBundle:
    """The bundle at ``path`` (blocking read); the empty policy for None.

    Raises:
        PolicyBundleInvalid
    """
    if path is None:
        return PolicyBundle()
    try:
        text = read_yaml_file(path)
    except YamlRefused as exc:
        raise PolicyBundleInvalid(f"policy bundle {path} is refused: {exc.reason}",
                                  hint="a policy bundle is a few keys; see docs/policy.md"
                                  ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyBundleInvalid(f"cannot read policy bundle {path}: {exc}") from None
    return parse_bundle(text, origin=str(path))
