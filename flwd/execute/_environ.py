"""The environment a job's step inherits: flwd's, less what flwd set there for itself."""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import MappingProxyType

import flwd


def inherited_environment() -> Mapping[str, str]:
    """The variables of this process that a step inherits (where its plan lets it).

    flwd sets a few in its own environment when it starts, for the libraries it runs
    itself (:data:`flwd.OWN_ENVIRONMENT`); a job gets the environment flwd was started
    with, so a Python job keeps, say, its pydantic plugins.
    """
    global _inherited
    own = flwd.OWN_ENVIRONMENT
    if not own:
        return os.environ
    # Made again only when the environment changed: decoding every variable through
    # os.environ took ~0.1 ms per step of a server's run. The encoded variables (the
    # mapping os.environ keeps in step with putenv) tell a change exactly, and cheaply.
    encoded = os.environ._data  # type: ignore[attr-defined]
    if _inherited is None or _inherited[0] != encoded or _inherited[1] != own:
        _inherited = (dict(encoded), dict(own), MappingProxyType(
            {name: value for name, value in os.environ.items() if own.get(name) != value}))
    return _inherited[2]


#: (os.environ's encoded variables, OWN_ENVIRONMENT, what a step inherits) when last made.
_inherited: tuple[dict[bytes, bytes], dict[str, str], Mapping[str, str]] | None = None
