"""What plan building needs to know about policy, gathered once per process."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from flwd.errors import PolicyBundleInvalid

from ._bundle import PolicyBundle, find_bundle, load_bundle
from ._images import Verdict

#: ``ref -> Verdict`` (blocking), or None when no verifier is installed.
ImageVerifier = Callable[[str], Verdict | None]


@dataclass(frozen=True, slots=True)
class PolicyContext:
    bundle: PolicyBundle = field(default_factory=PolicyBundle)
    verify_image: ImageVerifier | None = None
    #: ``FLWD_IMAGE_MAP``: image references replaced before any check (a
    #: mirror, or an image built offline); the replacement meets every check.
    image_map: Mapping[str, str] = field(default_factory=dict)


def parse_image_map(text: str) -> dict[str, str]:
    """``"alpine:3.20=localhost/x/busybox:1,ubuntu=..."`` → mapping.

    Raises:
        PolicyBundleInvalid: an entry is not ``FROM=TO``.
    """
    mapping: dict[str, str] = {}
    for entry in text.split(","):
        if not entry.strip():
            continue
        source, eq, target = entry.partition("=")
        if not eq or not source.strip() or not target.strip():
            raise PolicyBundleInvalid(f"FLWD_IMAGE_MAP entry {entry.strip()!r} is not FROM=TO",
                                      hint="e.g. FLWD_IMAGE_MAP=alpine:3.20=localhost/"
                                           "flwd-test/busybox:1")
        mapping[source.strip()] = target.strip()
    return mapping


def load_policy(env: Mapping[str, str], workspace: Path) -> PolicyContext:
    """The bundle (``FLWD_POLICY_FILE`` or ``<workspace>/flwd.policy.yaml``) and cosign if installed.

    Blocking (reads the bundle). The bundle's signature is not checked here:
    the server does that before it serves (``verify_bundle``).

    Raises:
        PolicyBundleInvalid
    """
    from ._signatures import CosignImageVerifier

    bundle = load_bundle(find_bundle(env, workspace))
    verifier = CosignImageVerifier(env)
    return PolicyContext(bundle, verifier if verifier.available else None,
                         parse_image_map(env.get("FLWD_IMAGE_MAP", "")))
