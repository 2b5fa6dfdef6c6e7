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
    #: Flag names (``--hostname``) allowed in ``container.extra_args`` in permissive.
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IsolationRequest:
    """What a job (or step) asks for beyond the secure defaults."""

    network: str | None = None
    rootfs_writable: bool = False
    capabilities: tuple[str, ...] = ()
    env_inheritance: bool = False
    #: ``container.extra_args`` left after :func:`fold_extra_args` took out the
    #: flags that are subjects of their own (network, capabilities, rootfs).
    extra_args: tuple[str, ...] = ()


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
    "container.extra_args": "drop the extra runtime arguments, or list the flags in the "
                            "policy bundle's overrides.extra_args (permissive)",
}


def _allow(subject: str, reason: str, level: str = "info") -> Decision:
    return Decision(subject, "allowed", "policy.override.allowed", reason, level)


def _deny(subject: str, reason: str) -> Decision:
    return Decision(subject, "denied", "policy.denied", reason)


def evaluate_overrides(profile: Profile, allowances: OverrideAllowances,
                       request: IsolationRequest) -> Evaluation:
    """Decide every override ``request`` asks for, stopping at the first denial."""
    result = Evaluation()
    for decide in (_network, _rootfs, _capabilities, _env, _extra_args):
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


def _extra_args(profile: Profile, allow: OverrideAllowances,
                req: IsolationRequest) -> Decision | None:
    flags = [arg for arg in req.extra_args if arg.startswith("-")]
    if not req.extra_args:
        return None
    subject = "container.extra_args"
    listed = " ".join(req.extra_args)
    if profile == "secure":
        return _deny(subject, "extra runtime arguments not permitted in secure profile")
    if profile == "disabled":
        return _allow(subject, f"extra runtime arguments [{listed}] allowed (profile disabled)",
                      "warning")
    allowed = {flag.lower() for flag in allow.extra_args}
    for flag in flags:
        name = flag.split("=", 1)[0].lower()
        if name not in allowed:
            return _deny(subject, f'runtime argument "{name}" not allowed by policy')
    return _allow(subject, f"extra runtime arguments [{listed}] allowed by policy")


#: Flags of ``container.extra_args`` that are policy subjects of their own.
_NETWORK_FLAGS = ("--network", "--net")
_CAP_FLAGS = ("--cap-add",)
_READ_ONLY_FLAGS = ("--read-only",)


def fold_extra_args(network: str | None, rootfs_writable: bool,
                    capabilities: Sequence[str], extra_args: Sequence[str]
                    ) -> tuple[str | None, bool, tuple[str, ...], tuple[str, ...]]:
    """Move the extra runtime arguments that loosen a known subject into that subject.

    ``--network X`` becomes the network, ``--cap-add X`` a capability,
    ``--read-only=false`` a writable rootfs: so they meet the same decision as
    the config keys (nothing bypasses policy), and the container gets each
    flag once. Returns ``(network, rootfs_writable, capabilities, rest)``;
    ``rest`` is decided as the ``container.extra_args`` subject.
    """
    caps = list(capabilities)
    rest: list[str] = []
    args = list(extra_args)
    index = 0
    while index < len(args):
        arg = args[index].strip()
        name, eq, value = arg.partition("=")
        takes_next = not eq and index + 1 < len(args) and not args[index + 1].startswith("-")
        if name in _NETWORK_FLAGS or name in _CAP_FLAGS:
            if not eq:
                value = args[index + 1].strip() if takes_next else ""
                index += 1 if takes_next else 0
            if name in _NETWORK_FLAGS:
                network = value or network
            elif value:
                caps.append(value)
        elif name in _READ_ONLY_FLAGS:
            if eq and value.strip().lower() == "false":
                rootfs_writable = True
        else:
            rest.append(arg)
        index += 1
    return network, rootfs_writable, tuple(caps), tuple(rest)


def attach_decisions(error: BaseException, decisions: Sequence[Decision]) -> None:
    """Remember on a refusal every decision taken before it, the denial last."""
    setattr(error, "policy_decisions", list(decisions))  # noqa: B010


def decisions_of(error: BaseException) -> list[Decision]:
    """The decisions :func:`attach_decisions` put on ``error`` (empty if none)."""
    found = getattr(error, "policy_decisions", None)
    return list(found) if isinstance(found, list) else []


def denial_for(error: BaseException, subject: str) -> Decision:
    """A ``denied`` decision for a refusal that is not an override (registry, signature …)."""
    code = getattr(getattr(error, "problem", None), "code", "policy.denied")
    return Decision(subject, "denied", code, getattr(error, "detail", str(error)))
