"""What ``flwd :serve`` checks before it serves: profile, policy bundle, container runtime."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flwd.containers import Runtime, detect_runtime
from flwd.errors import ContainerRuntimeUnavailable
from flwd.policy import (
    PolicyContext,
    Profile,
    find_bundle,
    load_policy,
    resolve_profile,
    verify_bundle,
)
from flwd.settings import Settings


def detect_container_runtime() -> str | None:
    """``podman`` (preferred) or ``docker`` on PATH, else None."""
    runtime = detect_runtime()
    return runtime.kind if runtime is not None else None


@dataclass(frozen=True, slots=True)
class Preflight:
    """What ``:serve`` checked before serving."""

    profile: Profile
    policy: PolicyContext
    runtime: Runtime | None
    bundle_path: Path | None
    #: How the bundle's signature was verified ("public key", "cosign keyless"), if it was.
    verified_by: str | None


def preflight(settings: Settings, *, profile: str | None = None, no_containers: bool = False,
              env: Mapping[str, str] | None = None) -> Preflight:
    """The checks before serving (blocking): profile, policy bundle and its signature, runtime.

    ``profile`` is ``--profile``; ``no_containers`` is ``--no-containers``.

    Raises:
        ProfileInvalid: ``--profile`` / ``FLWD_PROFILE`` is not a profile.
        PolicyBundleInvalid: the bundle cannot be read or parsed.
        PolicySignatureInvalid: ``secure`` and the bundle's signature is missing,
            bad, or there is no verifier.
        ContainerRuntimeUnavailable: no podman/docker and not ``--no-containers``.
    """
    env = os.environ if env is None else env
    effective = resolve_profile(environment=env.get("FLWD_PROFILE"), configured=profile)
    bundle_path = find_bundle(env, settings.workspace)
    policy = load_policy(env, settings.workspace)
    verified_by = None
    if effective == "secure" and bundle_path is not None:
        verified_by = verify_bundle(bundle_path, env)
    runtime = None if no_containers else detect_runtime(env)
    if runtime is None and not no_containers:
        raise ContainerRuntimeUnavailable(
            "no container runtime found: neither podman nor docker is on PATH",
            hint="install podman (preferred) or docker, or pass --no-containers")
    return Preflight(effective, policy, runtime, bundle_path, verified_by)
