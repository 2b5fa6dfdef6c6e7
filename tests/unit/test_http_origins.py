"""The --dev origin and Host rules (flwd/http/_origins.py), sans-IO."""

from __future__ import annotations

import pytest

from flwd.http._origins import DEV_ORIGIN, HostCheck, host_name, is_dev_origin


@pytest.mark.parametrize("origin", [
    "http://localhost", "http://localhost:3000", "https://localhost:8443", "http://127.0.0.1",
    "http://127.0.0.1:65535", "https://[::1]", "http://[::1]:5173",
])
def test_loopback_origins_are_dev_origins(origin: str) -> None:
    assert is_dev_origin(origin)


@pytest.mark.parametrize("origin", [
    "http://localhost.evil.example", "http://localhost@evil.example",
    "http://localhost:3000@evil.example", "http://localhost:3000.evil.example",
    "http://127.0.0.1.nip.io", "http://127.0.0.2", "http://[::1].evil.example",
    "http://localhost/", "http://localhost:", "http://localhost:abc", "http://localhost\n",
    "ws://localhost", "file://", "null", "", "HTTP://evil.example", "http://evil.example",
    "http://localhost:123456",
])
def test_everything_else_is_foreign(origin: str) -> None:
    assert not is_dev_origin(origin)
    # quart-cors matches with re.match (anchored at the start only): the pattern itself
    # must refuse what merely starts like a loopback origin.
    assert DEV_ORIGIN.match(origin) is None


@pytest.mark.parametrize(("header", "name"), [
    ("localhost", "localhost"), ("LocalHost:8080", "localhost"), ("127.0.0.1:80", "127.0.0.1"),
    ("[::1]", "[::1]"), ("[::1]:8080", "[::1]"), (" example.org ", "example.org"),
    ("[::1", None), ("[::1]x", None), ("[::1]:x", None), ("localhost:", None),
    ("localhost:80:80", None), ("", None), (":80", None),
])
def test_host_names(header: str, name: str | None) -> None:
    assert host_name(header) == name


def test_dev_answers_loopback_names_and_the_bound_host() -> None:
    check = HostCheck("127.0.0.1")
    for header in ("localhost:8080", "127.0.0.1:8080", "[::1]:8080", "127.0.0.2", "[0::1]"):
        assert check.allows(header), header
    for header in ("rebind.attacker.example", "rebind.attacker.example:8080", "localhost.",
                   "localhost.attacker.example", "127.0.0.1.nip.io", "0.0.0.0", "[::]",
                   "10.0.0.1", "", None):
        assert not check.allows(header), header
    assert HostCheck("LocalHost").allows("localhost:1")
    assert HostCheck("::1").allows("[::1]:1")
