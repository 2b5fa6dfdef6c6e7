"""RFC 7807 problem documents (sans-IO).

Domain errors map through :data:`flwd.errors.PROBLEMS`; HTTP-only conditions
(authentication, bodies, idempotency, cursors) are :class:`HttpProblem`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flwd.errors import FlwdError, ProblemSpec

from ._auth import AnyScope, Requirement

PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "https://flwd.dev/problems/"


class HttpProblem(Exception):
    """An HTTP-level problem raised by a handler; rendered as ``application/problem+json``."""

    def __init__(self, status: int, title: str, detail: str, *, code: str | None = None,
                 errors: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None, **extensions: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.code = code or title.replace(" ", "-")
        self.errors = errors or []
        self.headers = headers or {}
        self.extensions = extensions

    def document(self, instance: str) -> dict[str, Any]:
        return _document(self.status, self.title, self.code, self.detail, instance, self.errors,
                         self.extensions)


def _document(status: int, title: str, code: str, detail: str, instance: str,
              errors: list[dict[str, str]], extensions: dict[str, Any],
              type_: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": type_ or _TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": code,
    }
    if errors:
        doc["errors"] = errors
    for key, value in extensions.items():
        doc.setdefault(key, value)
    return doc


def domain_problem(error: FlwdError, instance: str) -> tuple[int, dict[str, Any]]:
    """(status, document) for a domain error, through the one table in ``flwd.errors``."""
    spec: ProblemSpec = error.problem
    detail = error.detail + (f" ({error.hint})" if error.hint else "")
    extensions = dict(error.extensions)
    return spec.status, _document(spec.status, spec.title, spec.code, detail, instance,
                                  error.errors, extensions, spec.type)


def unauthorized(detail: str, error: str | None = None) -> HttpProblem:
    """A 401; ``error`` is RFC 6750's (``invalid_token``: unknown, revoked or expired),
    left out when the request sent no credentials."""
    challenge = 'Bearer realm="flwd"' + (f', error="{error}"' if error else "")
    return HttpProblem(401, "unauthorized", detail, code="unauthorized",
                       headers={"WWW-Authenticate": challenge})


def forbidden(missing: Sequence[Requirement]) -> HttpProblem:
    """A 403 naming the requirements a token does not meet (of an ``AnyScope``,
    ``missing_scopes`` names the first scope: granting it is enough).

    The detail starts with the reference's whole detail, ``missing required scope``
    (what its clients match), and goes on to say which.
    """
    first = [need.scopes[0] if isinstance(need, AnyScope) else need for need in missing]
    return HttpProblem(403, "forbidden",
                       f"missing required scope{'s' if len(missing) > 1 else ''}: "
                       f"{', '.join(str(need) for need in missing)}", code="forbidden",
                       missing_scopes=first)


#: The titles of the 400s the reference has too (§8.3, §8.5, §8.8), by flwd's code:
#: a reference client reads the title; flwd's own 400s are titled ``invalid request``.
_BAD_REQUEST_TITLES = {
    "invalid-request-body": "invalid request body",
    "invalid-pagination": "invalid pagination",
    "invalid-idempotency-key": "invalid Idempotency-Key header",
}


def bad_request(detail: str, errors: list[dict[str, str]] | None = None,
                code: str = "invalid-request") -> HttpProblem:
    """A 400 about the request's shape, titled by its ``code``."""
    return HttpProblem(400, _BAD_REQUEST_TITLES.get(code, "invalid request"), detail,
                       code=code, errors=errors)


def not_found(what: str, detail: str, code: str) -> HttpProblem:
    return HttpProblem(404, f"{what} not found", detail, code=code)
