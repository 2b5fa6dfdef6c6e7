"""The environment a job's step inherits: flwd's, less what flwd set there for itself."""

from __future__ import annotations

import os
from collections.abc import Mapping

import flwd


def inherited_environment() -> Mapping[str, str]:
    """The variables of this process that a step inherits (where its plan lets it).

    flwd sets a few in its own environment when it starts, for the libraries it runs
    itself (:data:`flwd.OWN_ENVIRONMENT`); a job gets the environment flwd was started
    with, so a Python job keeps, say, its pydantic plugins.
    """
    own = flwd.OWN_ENVIRONMENT
    if not own:
        return os.environ
    return {name: value for name, value in os.environ.items() if own.get(name) != value}
