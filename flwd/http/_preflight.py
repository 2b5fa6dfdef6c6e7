"""What ``flwd :serve`` checks before it serves: profile, policy bundle, container runtime."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flwd.containers import Runtime, detect_runtime, require_runtime
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
        ContainerRuntimeUnavailable: not ``--no-containers``, and no podman/docker on
            PATH, or none that works (a podman that cannot create a container, a
            docker whose daemon does not answer).
    """
    env = os.environ if env is None else env
    effective = resolve_profile(environment=env.get("FLWD_PROFILE"), configured=profile)
    bundle_path = find_bundle(env, settings.workspace)
    policy = load_policy(env, settings.workspace)
    verified_by = None
    if effective == "secure" and bundle_path is not None:
        verified_by = verify_bundle(bundle_path, env)
    return Preflight(effective, policy, None if no_containers else _runtime(env), bundle_path,
                     verified_by)


def _runtime(env: Mapping[str, str]) -> Runtime:
    """The runtime every container run of this server uses, checked once: absent or broken,
    the server does not start (as the reference's serve; ``--no-containers`` is the way to
    serve host jobs only, and container requests then get 422)."""
    try:
        return require_runtime(env)
    except ContainerRuntimeUnavailable as exc:
        exc.hint = "; ".join(filter(None, [exc.hint, "or pass --no-containers to serve host "
                                                     "jobs only"]))
        raise
