"""The session cookie, its CSRF token and the same-origin rule (flwd/http/_browser.py), sans-IO."""

from __future__ import annotations

import pytest

from flwd.http._browser import (
    MAX_COOKIES,
    cross_site,
    csrf_matches,
    csrf_token,
    is_session_id,
    new_session_id,
    over_tls,
    session_cookies,
    session_digest,
)


def test_session_ids_are_fresh_random_and_only_their_digest_is_kept() -> None:
    ids = {new_session_id() for _ in range(100)}
    assert len(ids) == 100 and all(is_session_id(value) for value in ids)
    one = next(iter(ids))
    assert session_digest(one) == session_digest(one) != one
    assert len(session_digest(one)) == 64 and one not in session_digest(one)
    for bad in ("", "A" * 42, "A" * 44, "A" * 42 + "=", "é" * 43, "A" * 42 + "\n"):
        assert not is_session_id(bad)


def test_the_csrf_token_is_keyed_and_compared_whole() -> None:
    key, other_key = b"k" * 32, b"o" * 32
    session = new_session_id()
    token = csrf_token(key, session)
    assert token != csrf_token(other_key, session) != csrf_token(key, new_session_id())
    assert session not in token and token != session_digest(session)
    assert csrf_matches(token, token)
    assert not csrf_matches(None, token) and not csrf_matches("", token)
    assert not csrf_matches(token[:-1], token) and not csrf_matches(token + "0", token)


def test_session_cookies_are_read_secure_first_and_bounded() -> None:
    assert session_cookies(None) == [] and session_cookies("") == []
    assert session_cookies("a=1; flwd_session=xyz; b=2") == ["xyz"]
    assert session_cookies('flwd_session="q"; __Host-flwd_session=s') == ["s", "q"]
    assert session_cookies("flwd_session; =; ;;flwd_sessionx=1; xflwd_session=2") == []
    many = "; ".join(f"flwd_session={n}" for n in range(50))
    assert session_cookies(many) == [str(n) for n in range(MAX_COOKIES)]


@pytest.mark.parametrize(("origin", "site", "host"), [
    (None, None, "127.0.0.1:8080"),
    ("http://127.0.0.1:8080", "same-origin", "127.0.0.1:8080"),
    ("http://localhost:8080", None, "LOCALHOST:8080"),
    ("http://[::1]:8080", None, "[::1]:8080"),
    (None, "none", "example.org"),
    # A proxy that ends TLS: the page is https, the request arrives as http.
    ("https://flwd.example.org", "same-origin", "flwd.example.org"),
    ("https://flwd.example.org", None, "flwd.example.org:443"),
    ("http://flwd.example.org:80", None, "flwd.example.org"),
])
def test_same_origin_requests_pass(origin: str | None, site: str | None, host: str) -> None:
    assert cross_site(origin, site, host) is None


@pytest.mark.parametrize(("origin", "site", "host"), [
    ("http://evil.example", None, "127.0.0.1:8080"),
    (None, "cross-site", "127.0.0.1:8080"),
    (None, "same-site", "127.0.0.1:8080"),
    ("http://127.0.0.1:8080", "cross-site", "127.0.0.1:8080"),
    ("http://127.0.0.1:9090", None, "127.0.0.1:8080"),
    ("http://127.0.0.1", None, "127.0.0.1:8080"),
    ("null", None, "127.0.0.1:8080"),
    ("", None, "127.0.0.1:8080"),
    ("http://127.0.0.1:8080/", None, "127.0.0.1:8080"),
    ("http://user@127.0.0.1:8080", None, "127.0.0.1:8080"),
    ("ftp://127.0.0.1:8080", None, "127.0.0.1:8080"),
    ("http://127.0.0.1:8080.evil.example", None, "127.0.0.1:8080"),
    ("https://flwd.example.org", None, "flwd.example.org:8443"),
    ("http://127.0.0.1:8080", None, None),
    ("http://127.0.0.1:8080", None, "[bad"),
])
def test_cross_site_requests_are_named(origin: str | None, site: str | None,
                                       host: str | None) -> None:
    reason = cross_site(origin, site, host)
    assert reason is not None and len(reason) < 200


def test_secure_follows_the_scheme_or_the_page_origin() -> None:
    assert over_tls("https", None) and over_tls("http", "https://flwd.example.org")
    assert not over_tls("http", None) and not over_tls("http", "http://127.0.0.1:8080")
