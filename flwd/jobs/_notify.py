"""The ``notify:`` rules of a job's ``config.yaml`` and of ``scripts/flwd.yaml`` (sans-IO).

::

    notify:
      - on: [failure, recovery]       # also success, canceled
        after_failures: 3             # failure only when it is the 3rd in a row
        running_longer_than: 10m      # once per run, while it runs
        jobs: ["backup.*"]            # flwd.yaml: the jobs it is for (default: every job)
        webhook: {url: https://…, secret_env: ALERT_SECRET}
      - on: [failure]
        email: {smtp_host: mail.example.com, from: flwd@…, to: [ops@…]}
      - on: [canceled]
        command: [./scripts/tools/page.sh, --urgent]

A rule says *when* (``on``, ``after_failures``, ``running_longer_than``) and *where*:
exactly one sink. ``notify:`` may also be one rule (a mapping) instead of a list.
What the rules mean for a finished run is :mod:`flwd.notify`'s; this module only
validates what is written, naming each bad field by its path in the file.

YAML 1.1 reads a bare ``on:`` key as the boolean ``true`` (GitHub Actions' files
have the same trap): :func:`normalize_notify` takes it back to ``on``.

Nothing here ever holds a secret's *value*: a rule names where the secret is
(``secret_file``, ``secret_env``, ``credentials_file``, ``url_env``), and the
sink reads it when it delivers.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ._argspec import Loc, show, spec_error
from ._duration import duration_validator

__all__ = [
    "NOTIFY_EVENTS",
    "RUNNING_LONG",
    "SINK_KINDS",
    "CommandSink",
    "EmailSink",
    "NotifyRule",
    "WebhookSink",
    "normalize_notify",
]

#: What a finished run can notify of (``on:``).
NOTIFY_EVENTS: Final = ("failure", "recovery", "success", "canceled")
#: The event a rule with ``running_longer_than`` sends while the run still runs.
RUNNING_LONG: Final = "running_longer_than"
#: The kinds of sink, in the order a rule's keys are checked.
SINK_KINDS: Final = ("webhook", "email", "command")
NotifyEvent = Literal["failure", "recovery", "success", "canceled"]

_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: RFC 9110 field names (tokens).
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: Headers flwd sets itself: a rule cannot replace the body's type, its length or the
#: signature a receiver checks.
_RESERVED_HEADERS: Final = frozenset({"host", "content-length", "content-type",
                                      "transfer-encoding", "connection"})
_MAX_URL: Final = 2048
_MAX_NAME: Final = 64
_MAX_RECIPIENTS: Final = 50
_MAX_ARGV: Final = 64


class _Model(BaseModel):
    # As the job config's models: YAML already yields real booleans and numbers (and
    # built at the first validation, as theirs: flwd/jobs/_config.py).
    model_config = ConfigDict(frozen=True, strict=True, extra="forbid", defer_build=True)


def _problem(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, "{message}", {"message": message})


def _env_name(value: str | None, what: str) -> str | None:
    if value is not None and not _ENV_NAME.fullmatch(value):
        raise _problem("env_name", f"{show(value)} is not an environment variable name "
                                   f"(letters, digits and '_'): {what}")
    return value


def _file_name(value: str | None) -> str | None:
    if value is not None and (not value.strip() or "\0" in value):
        raise _problem("file_name", "must be a file's path")
    return value


class _Delivery(_Model):
    """What every sink has: a bound per attempt, attempts, and the first retry's delay."""

    timeout: float = 10.0
    attempts: int = Field(default=1, ge=1, le=20)
    #: The delay before the second attempt; it doubles for each next one (capped at 5
    #: minutes), times a random factor in [0.5, 1] so that retries do not synchronise.
    backoff: float = 1.0

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> Any:
        return duration_validator(value, allow_zero=False)

    @field_validator("backoff", mode="before")
    @classmethod
    def _backoff(cls, value: Any) -> Any:
        return duration_validator(value, allow_zero=True)


class WebhookSink(_Delivery):
    """POST the notification as JSON, signed with HMAC-SHA256 when a secret is given."""

    #: Where to POST (http or https). ``url_env`` instead: the URL is itself a secret
    #: (a chat service's incoming-webhook URL carries its token).
    url: str | None = None
    url_env: str | None = None
    secret_file: str | None = None
    secret_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    #: Headers whose values are secrets (``Authorization: Bearer …``): header name →
    #: the variable of the flwd process holding the value, read for each attempt.
    headers_env: dict[str, str] = Field(default_factory=dict)
    attempts: int = Field(default=5, ge=1, le=20)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        # Never quoted back: the URL may carry a token.
        if value is None:
            return None
        if len(value) > _MAX_URL or any(ch.isspace() or ord(ch) < 0x20 for ch in value):
            raise _problem("url", "is not a URL (no spaces or control characters, at most "
                                  f"{_MAX_URL} characters)")
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018  (a port out of range raises here)
        except ValueError:
            raise _problem("url", "is not a URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _problem("url", "must be an http:// or https:// URL with a host")
        return value

    @field_validator("url_env", "secret_env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        return _env_name(value, "the variable of the flwd process that holds it")

    @field_validator("secret_file")
    @classmethod
    def _secret_file(cls, value: str | None) -> str | None:
        return _file_name(value)

    @field_validator("headers", "headers_env", mode="before")
    @classmethod
    def _headers(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, dict):
            return value
        headers: dict[str, str] = {}
        problems: list[tuple[Loc, str]] = []
        from_env = info.field_name == "headers_env"
        for key, item in value.items():
            name = str(key)
            if not isinstance(key, str) or not _HEADER_NAME.fullmatch(key):
                problems.append(((name,), "not a header name"))
            elif key.lower() in _RESERVED_HEADERS or key.lower().startswith("x-flwd-"):
                problems.append(((name,), "flwd sets this header itself"))
            elif from_env:
                if not isinstance(item, str) or not _ENV_NAME.fullmatch(item):
                    problems.append(((name,), "must name an environment variable of the flwd "
                                              "process (letters, digits and '_')"))
                else:
                    headers[key] = item
            elif isinstance(item, bool) or not isinstance(item, str | int | float):
                problems.append(((name,), "must be a string"))
            elif any((ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F for ch in str(item)):
                problems.append(((name,), "must be one line of text"))
            else:
                headers[key] = str(item)
        if problems:
            raise spec_error(problems)
        return headers

    @model_validator(mode="after")
    def _check(self) -> WebhookSink:
        problems: list[tuple[Loc, str]] = []
        if (self.url is None) == (self.url_env is None):
            problems.append(((), "give url (or url_env, when the URL is itself a secret), "
                                 "not both"))
        if self.secret_file is not None and self.secret_env is not None:
            problems.append((("secret_env",), "give secret_file or secret_env, not both"))
        plain = {name.lower() for name in self.headers}
        problems.extend(((("headers_env", name), "also in headers: give it in one of them"))
                        for name in self.headers_env if name.lower() in plain)
        if problems:
            raise spec_error(problems)
        return self


def _address(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    from email.utils import parseaddr  # start-up: read when a rule names a mailbox

    if any(ord(ch) < 0x20 for ch in value) or "@" not in parseaddr(value)[1]:
        raise _problem("address", f"{show(value)} is not an e-mail address")
    return value


class EmailSink(_Delivery):
    """Send a plain-text mail through SMTP, STARTTLS by default."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid", defer_build=True,
                              populate_by_name=True)

    smtp_host: str
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1, max_length=_MAX_RECIPIENTS)
    #: A file holding ``USER:PASSWORD`` (one line; mode 0600, owned by flwd's user).
    credentials_file: str | None = None
    #: CA certificates to trust for STARTTLS instead of the system's (a private relay).
    ca_file: str | None = None
    timeout: float = 30.0
    attempts: int = Field(default=3, ge=1, le=20)
    backoff: float = 5.0

    @field_validator("smtp_host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not value.strip() or any(ch.isspace() or ch in "/@" for ch in value):
            raise _problem("host", f"{show(value)} is not a host name")
        return value

    @field_validator("sender", mode="before")
    @classmethod
    def _sender(cls, value: Any) -> Any:
        return _address(value)

    @field_validator("to", mode="before")
    @classmethod
    def _to(cls, value: Any) -> Any:
        items = [value] if isinstance(value, str) else value
        if isinstance(items, list):
            if not items:
                raise _problem("to", "give at least one recipient")
            return [_address(item) for item in items]
        return items

    @field_validator("credentials_file", "ca_file")
    @classmethod
    def _files(cls, value: str | None) -> str | None:
        return _file_name(value)

    @model_validator(mode="after")
    def _check(self) -> EmailSink:
        if self.credentials_file is not None and not self.starttls:
            raise spec_error([(("starttls",), "credentials are only sent over STARTTLS: "
                                              "set starttls: true (or drop credentials_file)")])
        return self


class CommandSink(_Delivery):
    """Run ``argv`` (no shell) with the notification as JSON on its stdin."""

    argv: list[str] = Field(min_length=1, max_length=_MAX_ARGV)
    timeout: float = 30.0

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        # ``command: [./notify.sh, --urgent]`` is the usual way to write it.
        return {"argv": value} if isinstance(value, list) else value

    @field_validator("argv")
    @classmethod
    def _argv(cls, value: list[str]) -> list[str]:
        if not value[0].strip():
            raise _problem("argv", "the program (the first word) must not be empty")
        if any("\0" in word for word in value):
            raise _problem("argv", "a word holds a NUL character")
        return value


Sink = WebhookSink | EmailSink | CommandSink


class NotifyRule(_Model):
    """One ``notify:`` entry: when to notify, and the one sink to tell."""

    #: Shown in deliveries (``GET /runs/{id}/notifications``); default ``notify[<index>]``.
    name: str | None = None
    on: list[NotifyEvent] = Field(default_factory=list)
    running_longer_than: float | None = None
    #: ``failure`` is sent only for the run that makes this many failures in a row (once
    #: per streak), and ``recovery`` only after a streak that long.
    after_failures: int | None = Field(default=None, ge=1, le=1000)
    #: Job ids (glob patterns, any case) the rule is for; default every job. For the
    #: rules of flwd.yaml, which apply to every job of the workspace.
    jobs: list[str] = Field(default_factory=list, max_length=100)
    webhook: WebhookSink | None = None
    email: EmailSink | None = None
    command: CommandSink | None = None

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> Any:
        if isinstance(value, str) and (not value.strip() or len(value) > _MAX_NAME
                                       or not value.isprintable()):
            raise _problem("name", f"must be 1-{_MAX_NAME} printable characters")
        return value

    @field_validator("on", mode="before")
    @classmethod
    def _on(cls, value: Any) -> Any:
        items = [value] if isinstance(value, str) else value
        if isinstance(items, list):
            return [item.strip().lower() if isinstance(item, str) else item for item in items]
        return items

    @field_validator("jobs", mode="before")
    @classmethod
    def _jobs(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("running_longer_than", mode="before")
    @classmethod
    def _running(cls, value: Any) -> Any:
        return duration_validator(value, allow_zero=False)

    @model_validator(mode="after")
    def _check(self) -> NotifyRule:
        problems: list[tuple[Loc, str]] = []
        sinks = [kind for kind in SINK_KINDS if getattr(self, kind) is not None]
        if len(sinks) != 1:
            problems.append(((), "give exactly one sink: webhook, email or command"
                                 + (f" (got {', '.join(sinks)})" if sinks else "")))
        if not self.on and self.running_longer_than is None and self.after_failures is None:
            problems.append(((), "say when to notify: on: [failure, recovery, success, "
                                 "canceled], after_failures: N or running_longer_than: 10m"))
        if problems:
            raise spec_error(problems)
        return self

    @property
    def sink(self) -> Sink:
        for kind in SINK_KINDS:
            sink = getattr(self, kind)
            if sink is not None:
                return sink  # type: ignore[no-any-return]
        raise AssertionError("validated rules have a sink")  # pragma: no cover

    @property
    def kind(self) -> str:
        """``webhook``, ``email`` or ``command``."""
        return next(kind for kind in SINK_KINDS if getattr(self, kind) is not None)

    @property
    def events(self) -> frozenset[str]:
        """What a finished run may send: ``on``, and ``failure`` with ``after_failures``."""
        return frozenset([*self.on, *(("failure",) if self.after_failures else ())])

    def applies_to(self, job_id: str) -> bool:
        """Whether the rule is for ``job_id`` (its ``jobs`` patterns; none: every job)."""
        folded = job_id.casefold()
        return not self.jobs or any(fnmatchcase(folded, pattern.casefold())
                                    for pattern in self.jobs)


def normalize_notify(value: Any) -> Any:
    """``notify:`` as a list of rules: one rule written as a mapping becomes a list of one,
    and a rule's YAML 1.1 ``on:`` key (read as ``true``) is ``on`` again. Anything else is
    returned as it is, for validation to report."""
    if value is None:
        return []
    rules = [value] if isinstance(value, dict) else value
    if not isinstance(rules, list):
        return rules
    return [{("on" if key is True and "on" not in rule else key): item
             for key, item in rule.items()} if isinstance(rule, dict) else rule
            for rule in rules]
