"""Container image references: validation, registry allow-list, signature decisions (sans-IO).

The signature itself is checked by a verifier (``cosign``, see ``_signatures``);
this module only turns its verdict and the verify mode into a decision.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flwd.errors import ImageRefInvalid, ImageRegistryNotAllowed, ImageSignatureRequired

from ._bundle import PolicyBundle, VerifyMode
from ._overrides import Decision

# name[:tag][@digest], name = [registry/]path; lower-case path components.
_REF_RE = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._:-]*(?:/[a-z0-9][a-z0-9._-]*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>[a-z0-9]+:[a-f0-9]{32,}))?$")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a verifier said about one image."""

    verified: bool
    reason: str = ""


#: Why an image is not verified when no verifier could be asked.
NO_VERIFIER = "cosign is not installed, so no signature can be verified"


@dataclass(frozen=True, slots=True)
class ImageTrust:
    """What the signature check found for one image (``image_trust`` of plans and sources).

    Only made when the verify mode is not ``disabled``: a disabled check found nothing.
    """

    image: str
    mode: VerifyMode
    verified: bool
    #: Why it is not verified (the verifier's message); empty when verified.
    reason: str = ""

    @staticmethod
    def of(image: str, mode: VerifyMode, verdict: Verdict | None) -> ImageTrust | None:
        """The trust of ``image`` under ``mode`` given the verifier's ``verdict``
        (None: no verifier); None when the mode is ``disabled``."""
        if mode == "disabled":
            return None
        if verdict is not None and verdict.verified:
            return ImageTrust(image, mode, True)
        reason = verdict.reason if verdict is not None and verdict.reason else NO_VERIFIER
        return ImageTrust(image, mode, False, reason)

    def to_json(self) -> dict[str, Any]:
        """``image_trust`` of a plan or a plan's step (reference §5)."""
        out: dict[str, Any] = {"image": self.image, "mode": self.mode, "verified": self.verified}
        if self.reason:
            out["reason"] = self.reason
        return out

    def source_json(self) -> dict[str, Any]:
        """``metadata.image_trust`` of an oci source (reference §12.3: other key names)."""
        out: dict[str, Any] = {"verify_mode": self.mode, "signature_verified": self.verified}
        if self.reason:
            out["signature_reason"] = self.reason
        return out


def validate_image_ref(ref: str) -> str:
    """The trimmed reference, or :class:`ImageRefInvalid` naming what is wrong."""
    text = ref.strip()
    problem = None
    if not text:
        problem = "is empty"
    elif "://" in text:
        problem = "has a scheme; write the reference without it (e.g. ghcr.io/org/app:1.0)"
    elif text.startswith("/"):
        problem = "starts with '/'; an image reference is not a path"
    elif any(c.isspace() for c in text) or _REF_RE.match(text) is None:
        problem = "is not an image reference like registry.example.com/org/app:1.0"
    if problem is not None:
        raise ImageRefInvalid(f"container image {ref!r} {problem}",
                              errors=[{"arg": "container.image", "message": problem}])
    return text


def image_repository(ref: str) -> str:
    """``registry/path`` of ``ref`` without ``:tag`` or ``@digest``."""
    name = ref.partition("@")[0]
    head, slash, last = name.rpartition("/")
    last = last.partition(":")[0]
    return f"{head}{slash}{last}"


def image_registry(ref: str) -> str:
    """The registry host of ``ref``: its first path segment if it looks like a host, else docker.io."""
    first, slash, _ = ref.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first.lower()
    return "docker.io"


def check_registry(ref: str, bundle: PolicyBundle) -> None:
    """Refuse an image whose registry is not allow-listed (an empty list allows all)."""
    if not bundle.allowed_registries:
        return
    registry = image_registry(ref)
    if registry not in bundle.allowed_registries:
        raise ImageRegistryNotAllowed(
            f"registry {registry} not allowed (image {ref})",
            hint=f"add {registry} to allowed_registries in the policy bundle "
                 f"({bundle.origin}) and restart the server",
            errors=[{"arg": "container.image", "message": f"registry {registry} not allowed"}])


def signature_decision(ref: str, mode: VerifyMode, verdict: Verdict | None) -> Decision | None:
    """The decision on ``ref``'s signature, or None when verification is disabled.

    ``verdict`` None means no verifier was available.

    Raises:
        ImageSignatureRequired: mode ``required`` and the image is not verified.
    """
    trust = ImageTrust.of(ref, mode, verdict)
    if trust is None:
        return None
    subject = "image.signature"
    if trust.verified:
        return Decision(subject, "allowed", "image.signature.verified",
                        f"signature of {ref} verified")
    reason = trust.reason
    if mode == "required":
        raise ImageSignatureRequired(
            f"signature of {ref} could not be verified: {reason}",
            hint="sign the image with cosign, install cosign, or set verify_signatures "
                 "(permissive / disabled) in the policy bundle",
            errors=[{"arg": "container.image", "message": reason}])
    return Decision(subject, "allowed", "image.signature.permissive",
                    f"signature of {ref} not verified (permissive): {reason}", "warning")
