"""Override decisions per profile (reference §11.3), sans-IO.

Every request to loosen isolation (network, writable rootfs, capabilities,
environment inheritance) is a *subject*; each gets a :class:`Decision`. The
first denial stops evaluation and becomes :class:`flwd.errors.PolicyDenied`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flwd.errors import PolicyDenied

from ._profiles import Profile


@dataclass(frozen=True, slots=True)
class OverrideAllowances:
    """The ``overrides`` block of a policy bundle."""

    network: tuple[str, ...] = ()
    rootfs_writable: bool = False
    caps: tuple[str, ...] = ()
    env_inheritance: bool = False


@dataclass(frozen=True, slots=True)
class IsolationRequest:
    """What a job (or step) asks for beyond the secure defaults."""

    network: str | None = None
    rootfs_writable: bool = False
    capabilities: tuple[str, ...] = ()
    env_inheritance: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    subject: str
    decision: str  # "allowed" | "denied"
    code: str  # "policy.override.allowed" | "policy.denied"
    reason: str
    level: str = "info"  # finding level for allowed decisions: info | warning

    def to_json(self) -> dict[str, Any]:
        return {"subject": self.subject, "decision": self.decision, "code": self.code,
                "reason": self.reason}


@dataclass(slots=True)
class Evaluation:
    decisions: list[Decision] = field(default_factory=list)

    @property
    def denied(self) -> Decision | None:
        return next((d for d in self.decisions if d.decision == "denied"), None)

    def raise_if_denied(self) -> None:
        denial = self.denied
        if denial is not None:
            raise PolicyDenied(denial.reason, subject=denial.subject,
                               hint=_HINTS.get(denial.subject))


_HINTS = {
    "env.inheritance": "remove env_inheritance from the job, or run under a profile whose "
                       "policy allows it (--profile permissive with overrides.env_inheritance)",
    "container.network": "use network: none, or allow the mode in the policy bundle overrides",
    "container.rootfs": "drop rootfs_writable, or allow it in the policy bundle overrides",
    "container.capabilities": "drop the capabilities, or allow them in the policy bundle",
}


def _allow(subject: str, reason: str, level: str = "info") -> Decision:
    return Decision(subject, "allowed", "policy.override.allowed", reason, level)


def _deny(subject: str, reason: str) -> Decision:
    return Decision(subject, "denied", "policy.denied", reason)


def evaluate_overrides(profile: Profile, allowances: OverrideAllowances,
                       request: IsolationRequest) -> Evaluation:
    """Decide every override ``request`` asks for, stopping at the first denial."""
    result = Evaluation()
    for decide in (_network, _rootfs, _capabilities, _env):
        decision = decide(profile, allowances, request)
        if decision is None:
            continue
        result.decisions.append(decision)
        if decision.decision == "denied":
            break
    return result


def _network(profile: Profile, allow: OverrideAllowances, req: IsolationRequest) -> Decision | None:
    mode = (req.network or "none").strip().lower()
    if mode == "none":
        return None
    subject = "container.network"
    if profile == "secure":
        return _deny(subject, f'network override "{mode}" not permitted in secure profile')
    if profile == "disabled":
        return _allow(subject, f'network override "{mode}" allowed (profile disabled)', "warning")
    if mode in (n.lower() for n in allow.network):
        return _allow(subject, f'network override "{mode}" allowed by policy')
    return _deny(subject, f'network override "{mode}" not allowed by policy')


def _rootfs(profile: Profile, allow: OverrideAllowances, req: IsolationRequest) -> Decision | None:
    if not req.rootfs_writable:
        return None
    subject = "container.rootfs"
    if profile == "secure":
        return _deny(subject, "writable rootfs not permitted in secure profile")
    if profile == "disabled":
        return _allow(subject, "writable rootfs allowed (profile disabled)", "warning")
    if allow.rootfs_writable:
        return _allow(subject, "writable rootfs allowed by policy")
    return _deny(subject, "writable rootfs not allowed by policy")


def _capabilities(profile: Profile, allow: OverrideAllowances,
                  req: IsolationRequest) -> Decision | None:
    caps = _upper(req.capabilities)
    if not caps:
        return None
    subject = "container.capabilities"
    listed = " ".join(caps)
    if profile == "secure":
        return _deny(subject, "adding capabilities not permitted in secure profile")
    if profile == "disabled":
        return _allow(subject, f"capabilities [{listed}] allowed (profile disabled)", "warning")
    allowed = set(_upper(allow.caps))
    if not allowed:
        return _deny(subject, "policy does not allow adding capabilities")
    for cap in caps:
        if cap not in allowed:
            return _deny(subject, f'capability "{cap}" not allowed by policy')
    return _allow(subject, f"capabilities [{listed}] allowed by policy")


def _env(profile: Profile, allow: OverrideAllowances, req: IsolationRequest) -> Decision | None:
    if not req.env_inheritance:
        return None
    subject = "env.inheritance"
    if profile == "secure":
        return _deny(subject, "environment inheritance not permitted in secure profile")
    if profile == "disabled":
        return _allow(subject, "environment inheritance allowed (profile disabled)", "warning")
    if allow.env_inheritance:
        return _allow(subject, "environment inheritance allowed by policy")
    return _deny(subject, "environment inheritance not allowed by policy")


def _upper(values: Sequence[str]) -> list[str]:
    return [v.strip().upper() for v in values if v.strip()]
