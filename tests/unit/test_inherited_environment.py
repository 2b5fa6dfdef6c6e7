"""What a step inherits of flwd's environment (``flwd.execute.inherited_environment``):
flwd's own settings left out, every change of ``os.environ`` seen at the next step, and
nothing made again while nothing changed (it is asked for every step a server runs)."""

from __future__ import annotations

import os

import pytest

import flwd
from flwd.execute import inherited_environment


@pytest.fixture
def own(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setitem(flwd.OWN_ENVIRONMENT, "PYDANTIC_DISABLE_PLUGINS", "__all__")
    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", "__all__")
    return flwd.OWN_ENVIRONMENT


def test_flwds_own_settings_are_left_out(own: dict[str, str]) -> None:
    inherited = inherited_environment()
    assert "PYDANTIC_DISABLE_PLUGINS" not in inherited
    assert dict(inherited) == {name: value for name, value in os.environ.items()
                               if name != "PYDANTIC_DISABLE_PLUGINS"}


def test_every_change_of_the_environment_is_seen(own: dict[str, str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    before = inherited_environment()
    monkeypatch.setenv("FLWD_TEST_ADDED", "1")
    assert inherited_environment()["FLWD_TEST_ADDED"] == "1"
    monkeypatch.setenv("FLWD_TEST_ADDED", "2")
    assert inherited_environment()["FLWD_TEST_ADDED"] == "2"
    monkeypatch.delenv("FLWD_TEST_ADDED")
    assert "FLWD_TEST_ADDED" not in inherited_environment()
    # The user's own value of a variable flwd sets for itself is theirs to pass on.
    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", "mine")
    assert inherited_environment()["PYDANTIC_DISABLE_PLUGINS"] == "mine"
    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", "__all__")
    assert dict(inherited_environment()) == dict(before)


def test_it_is_made_once_while_nothing_changes(own: dict[str, str]) -> None:
    first = inherited_environment()
    assert inherited_environment() is first
    with pytest.raises(TypeError):
        first["X"] = "y"  # type: ignore[index]  # shared by every step: read-only
