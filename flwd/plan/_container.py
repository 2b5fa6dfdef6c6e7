"""Planning container steps: image, policy checks, resources, command (sans-IO).

Checks run in the reference's order for each container config: image
reference, registry allow-list, signature (through the injected verifier),
resource ceilings, then the override table — so a request the policy refuses
is refused while planning, before anything starts.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flwd.errors import (
    ConfigInvalid,
    ImageRegistryNotAllowed,
    ImageSignatureRequired,
    PolicyDenied,
    ResourcesInvalid,
)
from flwd.jobs import ContainerConfig
from flwd.policy import (
    Decision,
    ImageTrust,
    IsolationRequest,
    PolicyContext,
    Profile,
    attach_decisions,
    check_registry,
    check_resources,
    denial_for,
    evaluate_overrides,
    fold_extra_args,
    signature_decision,
    validate_image_ref,
)

from ._commands import _BY_SUFFIX, _shebang

CONTAINER_PREFIX = "container:"


@dataclass(frozen=True, slots=True)
class ContainerPlan:
    """How one step's container runs, after policy."""

    image: str
    network: str = "none"
    rootfs_writable: bool = False
    capabilities: tuple[str, ...] = ()
    cpu_millis: int | None = None
    memory_bytes: int | None = None
    extra_args: tuple[str, ...] = ()
    #: The image as the job names it (``image`` is what runs: mapped by
    #: ``FLWD_IMAGE_MAP``, pinned by digest for an add-on) — a plan's ``container_image``.
    requested_image: str | None = None
    #: What the signature check found (None: the verify mode is ``disabled``).
    trust: ImageTrust | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"image": self.image, "network": self.network,
                               "rootfs": "writable" if self.rootfs_writable else "read-only",
                               "capabilities": list(self.capabilities)}
        resources: dict[str, Any] = {}
        if self.cpu_millis is not None:
            resources["cpus"] = self.cpu_millis / 1000
        if self.memory_bytes is not None:
            resources["memory_bytes"] = self.memory_bytes
        if resources:
            out["resources"] = resources
        if self.extra_args:
            out["extra_args"] = list(self.extra_args)
        return out


def interpreter_image(interpreter: str | None) -> str | None:
    """``IMAGE`` of ``interpreter: container:IMAGE``, else None."""
    if interpreter and interpreter.strip().lower().startswith(CONTAINER_PREFIX):
        return interpreter.strip()[len(CONTAINER_PREFIX):].strip()
    return None


def uses_container(executor: str, interpreter: str | None) -> bool:
    return executor == "container" or interpreter_image(interpreter) is not None


def plan_container(config: ContainerConfig | None, image: str | None, *, profile: Profile,
                   policy: PolicyContext, env_inheritance: bool, step_label: str | None = None
                   ) -> tuple[ContainerPlan, list[Decision]]:
    """The container of one step and the policy decisions it took.

    Raises:
        ImageRefInvalid, ImageRegistryNotAllowed, ImageSignatureRequired,
        ResourcesInvalid, PolicyDenied: the policy refuses the step.
    """
    config = config or ContainerConfig()
    requested = (image or config.image or "").strip()
    ref = validate_image_ref(policy.image_map.get(requested, requested))
    bundle = policy.bundle
    decisions: list[Decision] = []
    trust: ImageTrust | None = None
    subject = "image.registry"
    try:
        check_registry(ref, bundle)
        mode = bundle.verify_mode(profile)
        if mode != "disabled":
            subject = "image.signature"
            verdict = policy.verify_image(ref) if policy.verify_image is not None else None
            trust = ImageTrust.of(ref, mode, verdict)
            decision = signature_decision(ref, mode, verdict)
            if decision is not None:
                decisions.append(_label(decision, step_label))
        subject = "container.resources"
        resources = config.resources
        cpu, memory = check_resources(resources.cpu if resources else None,
                                      resources.memory if resources else None, bundle.ceilings)
    except (ImageRegistryNotAllowed, ImageSignatureRequired, ResourcesInvalid) as exc:
        attach_decisions(exc, [*decisions, _label(denial_for(exc, subject), step_label)])
        raise
    network, rootfs, caps, rest = fold_extra_args(
        config.network, config.rootfs_writable, config.capabilities, config.extra_args)
    evaluation = evaluate_overrides(profile, bundle.overrides, IsolationRequest(
        network=network, rootfs_writable=rootfs, capabilities=caps,
        env_inheritance=env_inheritance, extra_args=rest))
    decisions.extend(_label(d, step_label) for d in evaluation.decisions)
    if evaluation.denied is not None:
        try:
            evaluation.raise_if_denied()
        except PolicyDenied as exc:
            attach_decisions(exc, decisions)
            raise
    plan = ContainerPlan(
        image=ref,
        network=(network or "none").strip().lower(),
        rootfs_writable=rootfs,
        capabilities=tuple(c.strip().upper() for c in caps if c.strip()),
        cpu_millis=cpu, memory_bytes=memory, extra_args=rest,
        requested_image=requested, trust=trust)
    return plan, decisions


def _label(decision: Decision, step_label: str | None) -> Decision:
    if step_label is None:
        return decision
    return Decision(decision.subject, decision.decision, decision.code,
                    f"{step_label}: {decision.reason}", decision.level)


def container_command(interpreter: str | None, script: Path, *, config_path: str) -> list[str]:
    """The command that runs ``script`` inside the container.

    ``interpreter: container:IMAGE`` or none: an executable script with a
    ``#!`` line runs directly (the image must understand the line); without
    the exec bit the ``#!`` words run it; else the suffix decides, with
    ``.sh`` run by ``sh`` (small images have no bash). Any other interpreter
    (``executor: container`` + ``interpreter: python3``) runs the script.

    Raises:
        ConfigInvalid: nothing says how to run the script.
    """
    if interpreter and interpreter_image(interpreter) is None:
        words = shlex.split(interpreter)
        if words:
            return [*words, str(script)]
    shebang = _shebang(script)
    if shebang and os.access(script, os.X_OK):
        return [str(script)]
    if shebang:
        return [*shebang, str(script)]
    if script.suffix.lower() in (".sh", ""):
        return ["sh", str(script)]
    prefix = _BY_SUFFIX.get(script.suffix.lower())
    if prefix is not None:
        return [*prefix, str(script)]
    raise ConfigInvalid(f"{config_path}: cannot tell how to run {script.name} in the container",
                        hint="give the script a #! line the image understands")
