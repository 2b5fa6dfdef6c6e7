"""Security profiles and their precedence (sans-IO)."""

from __future__ import annotations

from typing import Literal

from flwd.errors import ProfileInvalid

Profile = Literal["secure", "permissive", "disabled"]
PROFILES: tuple[Profile, ...] = ("secure", "permissive", "disabled")
DEFAULT_PROFILE: Profile = "secure"


def parse_profile(value: str, *, origin: str) -> Profile:
    """Normalise a profile name; ``origin`` says where it came from for the error."""
    name = value.strip().lower()
    for profile in PROFILES:
        if name == profile:
            return profile
    raise ProfileInvalid(
        f"invalid security profile '{value}' from {origin}",
        hint="use one of: secure, permissive, disabled",
        errors=[{"arg": "profile", "message": f"'{value}' is not secure, permissive or disabled"}],
    )


def resolve_profile(*, requested: str | None = None, environment: str | None = None,
                    configured: str | None = None, requested_by: str = "the request") -> Profile:
    """Effective profile: request > ``FLWD_PROFILE`` > flag/config > ``secure``.

    ``requested_by`` names where ``requested`` came from in an error (a CLI run's
    ``--profile`` is its request).
    """
    if requested:
        return parse_profile(requested, origin=requested_by)
    if environment:
        return parse_profile(environment, origin="FLWD_PROFILE")
    if configured:
        return parse_profile(configured, origin="--profile")
    return DEFAULT_PROFILE
