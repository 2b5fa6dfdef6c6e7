"""The allow-list of KV namespaces and their quotas (sans-IO).

The reference allows ``core_triggers`` and ``core_invocation_state``, 32 MiB each,
and looks names up case-insensitively. ``flwd :serve --kv-namespace NAME[=LIMIT]``
(repeatable; or ``FLWD_KV_NAMESPACES``, comma-separated) replaces that list. The
engine hands the list to every host step as ``FLWD_KV_NAMESPACES``, so a job's
``flwd :kv`` allows what its server allows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from flwd.errors import KvNamespaceForbidden, UsageError

MIB = 1 << 20
DEFAULT_LIMIT = 32 * MIB
DEFAULT_NAMESPACES = ("core_triggers", "core_invocation_state")
ENV_VAR = "FLWD_KV_NAMESPACES"
#: The reference's namespace rule (``^[a-zA-Z0-9_]+$``), bounded.
_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
_LIMIT = re.compile(r"([0-9]{1,16})\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": MIB, "mb": MIB,
          "mib": MIB, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}
#: No namespace may be given more than this (a typo of a unit should not mean "unbounded").
MAX_QUOTA = 1 << 40


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "…")


@dataclass(frozen=True, slots=True)
class KvNamespaces:
    """Allow-listed namespaces (lower-case names) and the bytes each may hold."""

    limits: Mapping[str, int] = field(
        default_factory=lambda: dict.fromkeys(DEFAULT_NAMESPACES, DEFAULT_LIMIT))

    @classmethod
    def parse(cls, specs: Iterable[str], *, origin: str = "--kv-namespace") -> KvNamespaces:
        """``NAME[=LIMIT]`` specs (LIMIT in bytes, or with a unit: 512KiB, 8MiB, 1GiB).

        Raises:
            UsageError: a spec is malformed, a limit is not positive, or a name repeats.
        """
        limits: dict[str, int] = {}
        for spec in specs:
            name, sep, limit_text = spec.strip().partition("=")
            if not _NAME.fullmatch(name):
                raise UsageError(
                    f"{origin} {_shown(spec)}: a namespace is 1-64 letters, digits or '_'",
                    hint=_example(origin))
            key = name.lower()
            if key in limits:
                raise UsageError(f"{origin}: namespace {key} is given twice")
            limits[key] = _parse_limit(limit_text, spec, origin) if sep else DEFAULT_LIMIT
        return cls(limits)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KvNamespaces:
        """The list ``FLWD_KV_NAMESPACES`` gives (``a,b=1MiB``), else the default one.

        Raises:
            UsageError: the variable is malformed.
        """
        text = env.get(ENV_VAR, "").strip()
        if not text:
            return cls()
        return cls.parse([part for part in text.split(",") if part.strip()], origin=ENV_VAR)

    def to_env(self) -> str:
        """The value of ``FLWD_KV_NAMESPACES`` that gives this list back."""
        return ",".join(f"{name}={limit}" for name, limit in self.limits.items())

    def resolve(self, name: str) -> tuple[str, int]:
        """(the namespace as stored, its quota) for ``name`` in any case.

        Raises:
            KvNamespaceForbidden: it is not allow-listed.
        """
        key = name.lower()
        limit = self.limits.get(key)
        if limit is None:
            allowed = ", ".join(self.limits) or "none"
            raise KvNamespaceForbidden(
                f"namespace {_shown(name)} is not allow-listed (allowed: {allowed})",
                hint=f"'flwd :serve --kv-namespace NAME[=LIMIT]' or {ENV_VAR} allows more")
        return key, limit


def _example(origin: str) -> str:
    if origin == ENV_VAR:
        return f"e.g. {ENV_VAR}=core_triggers=8MiB,counters"
    return f"e.g. {origin} core_triggers=8MiB"


def _parse_limit(text: str, spec: str, origin: str) -> int:
    match = _LIMIT.fullmatch(text.strip())
    value = int(match[1]) * _UNITS[(match[2] or "").lower()] if match else 0
    if not 0 < value <= MAX_QUOTA:
        raise UsageError(f"{origin} {_shown(spec)}: LIMIT must be a positive number of "
                         "bytes up to 1 TiB, optionally with a unit (KiB, MiB, GiB)",
                         hint=_example(origin))
    return value
