"""A hook's definition, as written in ``flwd.yaml`` or a job's config, checked (sans-IO).

Strict on purpose: an unknown key, a secret written inline, an auth block that
signs a timestamp without saying where it comes from — each is a
:class:`HookInvalid` naming the field and the fix, and the hook is not served.
A hook guarding what may run on this machine is better refused than guessed at.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from flwd.jobs import clip, close_matches, parse_duration, quoted_choice

from ._model import ArgSource, HmacAuth, Hook, HookAuth, Network, SecretRef, TokenAuth

#: A hook's name is one URL path segment.
NAME_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
_NAME: Final = re.compile(NAME_PATTERN)
#: An HTTP field name (RFC 9110 token), bounded.
_HEADER: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
_ENV: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_QUERY: Final = re.compile(r"[A-Za-z0-9_.~-]{1,64}")
_ALGORITHMS: Final = ("sha256", "sha512", "sha1")
_PLACEHOLDER: Final = re.compile(r"\{([^{}]*)\}")
#: Longest signed timestamp window: a wider one is hardly a window.
MAX_TOLERANCE: Final = 3600.0
MAX_REPLAY_WINDOW: Final = 30 * 86400.0
MIN_REPLAY_WINDOW: Final = 60.0

_HOOK_KEYS: Final = ("name", "job", "description", "args", "auth", "delivery_header",
                     "replay_window")
_HMAC_KEYS: Final = ("secret_file", "secret_env", "secret_encoding", "header", "algorithm",
                     "format", "timestamp_header", "signed_payload", "tolerance")
_TOKEN_KEYS: Final = ("secret_file", "secret_env", "header")
_AUTH_KEYS: Final = ("hmac", "token", "bearer", "allow_ips")
_SOURCES: Final = ("body", "query", "header", "value")


class HookInvalid(Exception):
    """What is wrong with one definition: ``(field path, message)`` pairs, the field
    path relative to the hook (``auth.hmac.format``)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{where}: {what}" if where else what
                                   for where, what in problems))
        self.problems = problems


class _Problems:
    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def add(self, where: str, message: str) -> None:
        self.found.append((where, message))

    def unknown_keys(self, data: Mapping[Any, Any], known: tuple[str, ...], where: str) -> None:
        for key in data:
            if key not in known:
                near = close_matches(clip(str(key)), known)
                hint = f"; did you mean {quoted_choice(near)}?" if near else (
                    f" (known: {', '.join(known)})")
                self.add(_join(where, clip(str(key))), f"unknown key{hint}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def parse_hook(entry: Any, *, base: Path, implied_job: str | None = None,
               declared_in: str = "") -> Hook:
    """The :class:`Hook` an entry of a ``hooks:`` list defines.

    ``base``: what a relative ``secret_file`` is relative to (the workspace).
    ``implied_job``: the job of the config the entry is in (then ``job`` is not written).

    Raises:
        HookInvalid: every problem of the entry.
    """
    problems = _Problems()
    if not isinstance(entry, dict):
        raise HookInvalid([("", "each hook is a mapping with name, job, args and auth")])
    problems.unknown_keys(entry, _HOOK_KEYS, "")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.add("name", "required: 1-64 letters, digits, '.', '-' or '_', starting with a "
                             "letter or digit (it is the last segment of /hooks/<name>)")
        name = ""
    job = _job(entry.get("job"), implied_job, problems)
    description = entry.get("description")
    if description is not None and not isinstance(description, str):
        problems.add("description", "must be a string")
        description = None
    auth = _auth(entry.get("auth"), base, problems)
    delivery_header = _header(entry.get("delivery_header"), "delivery_header", problems,
                              required=False)
    window = _duration(entry.get("replay_window"), "replay_window", 86400.0,
                       (MIN_REPLAY_WINDOW, MAX_REPLAY_WINDOW), problems)
    args = _args(entry.get("args"), auth, problems)
    if auth is not None and auth.hmac is not None and "{delivery}" in auth.hmac.payload \
            and delivery_header is None:
        problems.add("auth.hmac.signed_payload", "signs {delivery}: name its header with "
                                                 "delivery_header")
    if problems.found or auth is None or job is None:
        raise HookInvalid(problems.found or [("auth", "required")])
    return Hook(name=name, job=job, auth=auth, args=args, description=description,
                delivery_header=delivery_header, replay_window=window, declared_in=declared_in)


def _job(value: Any, implied: str | None, problems: _Problems) -> str | None:
    if implied is not None:
        if value is not None and value != implied:
            problems.add("job", f"a hook in a job's config runs that job ({implied}): "
                                "leave 'job' out")
        return implied
    if not isinstance(value, str) or not value.strip():
        problems.add("job", "required: the id of the job the hook runs")
        return None
    return value.strip()


def _duration(value: Any, where: str, default: float, bounds: tuple[float, float],
              problems: _Problems) -> float:
    if value is None:
        return default
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        problems.add(where, str(exc))
        return default
    low, high = bounds
    if not low <= seconds <= high:
        problems.add(where, f"must be between {low:g}s and {high:g}s (got {seconds:g}s)")
    return seconds


def _header(value: Any, where: str, problems: _Problems, *, required: bool,
            default: str | None = None) -> str | None:
    if value is None:
        if required and default is None:
            problems.add(where, "required: a header name")
        return default
    if not isinstance(value, str) or not _HEADER.fullmatch(value):
        problems.add(where, "must be an HTTP header name (letters, digits and -, at most 64)")
        return default
    return value


def _auth(value: Any, base: Path, problems: _Problems) -> HookAuth | None:
    if value is None:
        problems.add("auth", "required: a hook runs a job for whoever can reach the server, so "
                             "say how a request proves where it comes from (hmac, token, bearer, "
                             "allow_ips), or write 'auth: none' (served by a --dev server only)")
        return None
    if value == "none":
        return HookAuth()
    if not isinstance(value, dict) or not value:
        problems.add("auth", "must be 'none' or a mapping of one or more of "
                             f"{', '.join(_AUTH_KEYS)}")
        return None
    problems.unknown_keys(value, _AUTH_KEYS, "auth")
    bearer = value.get("bearer", False)
    if bearer == {}:
        bearer = True
    if not isinstance(bearer, bool) or ("bearer" in value and bearer is False):
        problems.add("auth.bearer", "write 'bearer: true' (a flwd token with the "
                                    "hooks:trigger scope), or leave it out")
        bearer = False
    auth = HookAuth(hmac=_hmac(value["hmac"], base, problems) if "hmac" in value else None,
                    token=_token(value["token"], base, problems) if "token" in value else None,
                    bearer=bearer, allow_ips=_networks(value.get("allow_ips"), problems))
    if auth.none and not problems.found:
        problems.add("auth", "lists no check")
    return auth


def _secret(data: Mapping[str, Any], where: str, base: Path, problems: _Problems
            ) -> SecretRef:
    if "secret" in data:
        problems.add(f"{where}.secret", "a secret is never written in a config file: put it in "
                                        "a file (secret_file: PATH) or in the server's "
                                        "environment (secret_env: NAME)")
    file, env = data.get("secret_file"), data.get("secret_env")
    if (file is None) == (env is None):
        problems.add(where, "give exactly one of secret_file (a path) and secret_env "
                            "(a variable of the server's environment)")
        return SecretRef("env", "")
    encoding = data.get("secret_encoding", "text")
    if encoding not in ("text", "base64"):
        problems.add(f"{where}.secret_encoding", "must be text (the default) or base64")
        encoding = "text"
    if file is not None:
        if not isinstance(file, str) or not file.strip() or "\0" in file:
            problems.add(f"{where}.secret_file", "must be a path")
            return SecretRef("file", "")
        path = Path(file.strip()).expanduser()
        return SecretRef("file", str(path if path.is_absolute() else base / path), encoding)
    if not isinstance(env, str) or not _ENV.fullmatch(env):
        problems.add(f"{where}.secret_env", "must be an environment variable name")
        return SecretRef("env", "")
    return SecretRef("env", env, encoding)


def _mapping(value: Any, where: str, known: tuple[str, ...], problems: _Problems
             ) -> dict[str, Any]:
    if not isinstance(value, dict):
        problems.add(where, "must be a mapping")
        return {}
    problems.unknown_keys(value, (*known, "secret"), where)
    return value


def _hmac(value: Any, base: Path, problems: _Problems) -> HmacAuth:
    data = _mapping(value, "auth.hmac", _HMAC_KEYS, problems)
    secret = _secret(data, "auth.hmac", base, problems)
    header = _header(data.get("header"), "auth.hmac.header", problems, required=False,
                     default="X-Hub-Signature-256") or "X-Hub-Signature-256"
    algorithm = data.get("algorithm", "sha256")
    if algorithm not in _ALGORITHMS:
        problems.add("auth.hmac.algorithm", f"must be one of {', '.join(_ALGORITHMS)}")
        algorithm = "sha256"
    written = data.get("format", "sha256={hex}")
    stripe = written == "stripe"
    template = {"hex": "{hex}", "base64": "{base64}"}.get(written, written) if isinstance(
        written, str) else ""
    if not stripe and sorted(_PLACEHOLDER.findall(template)) not in (["hex"], ["base64"]):
        problems.add("auth.hmac.format", "must be 'hex', 'base64', 'stripe', or a template "
                                         "holding {hex} or {base64} once (e.g. 'sha256={hex}')")
    timestamp_header = _header(data.get("timestamp_header"), "auth.hmac.timestamp_header",
                               problems, required=False)
    payload = data.get("signed_payload", "{timestamp}.{body}" if stripe else "{body}")
    placeholders = _PLACEHOLDER.findall(payload) if isinstance(payload, str) else []
    if (not isinstance(payload, str) or placeholders.count("body") != 1
            or set(placeholders) - {"body", "timestamp", "delivery"}
            or any(placeholders.count(name) > 1 for name in ("timestamp", "delivery"))):
        problems.add("auth.hmac.signed_payload", "must hold {body} once, and may hold "
                                                 "{timestamp} and {delivery} once each "
                                                 "(e.g. '{timestamp}.{body}')")
        payload = "{body}"
    has_time = stripe or timestamp_header is not None
    if stripe and timestamp_header is not None:
        problems.add("auth.hmac.timestamp_header", "the stripe format carries its timestamp "
                                                   "(t=…): leave timestamp_header out")
    elif has_time and "{timestamp}" not in payload:
        problems.add("auth.hmac.signed_payload", "must hold {timestamp}: a timestamp that is "
                                                 "not signed proves nothing")
    elif not has_time and "{timestamp}" in payload:
        problems.add("auth.hmac.timestamp_header", "required: signed_payload signs "
                                                   "{timestamp}; name the header it comes in")
    tolerance = _duration(data.get("tolerance"), "auth.hmac.tolerance", 300.0,
                          (1.0, MAX_TOLERANCE), problems)
    return HmacAuth(secret=secret, header=header, algorithm=algorithm, template=template,
                    stripe=stripe, timestamp_header=timestamp_header, payload=payload,
                    tolerance=tolerance)


def _token(value: Any, base: Path, problems: _Problems) -> TokenAuth:
    data = _mapping(value, "auth.token", _TOKEN_KEYS, problems)
    secret = _secret(data, "auth.token", base, problems)
    header = _header(data.get("header"), "auth.token.header", problems, required=False,
                     default="X-Gitlab-Token") or "X-Gitlab-Token"
    return TokenAuth(secret=secret, header=header)


def _networks(value: Any, problems: _Problems) -> tuple[Network, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        problems.add("auth.allow_ips", "must be a list of addresses or networks (CIDR)")
        return ()
    networks = []
    for index, item in enumerate(value):
        try:
            networks.append(ipaddress.ip_network(str(item).strip(), strict=False))
        except ValueError:
            problems.add(f"auth.allow_ips[{index}]",
                         f"'{clip(str(item))}' is not an address or a network (10.0.0.0/8, ::1)")
    return tuple(networks)


def _args(value: Any, auth: HookAuth | None, problems: _Problems) -> dict[str, ArgSource]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add("args", "must be a mapping of argument name → {body|query|header|value}")
        return {}
    credentials = auth.credential_headers if auth is not None else frozenset({"authorization"})
    args: dict[str, ArgSource] = {}
    for name, spec in value.items():
        where = f"args.{clip(str(name))}"
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in _SOURCES:
            problems.add(where, "must be a mapping with one of body (a JSON pointer or a "
                                "dotted path), query, header (a name) or value (a constant)")
            continue
        kind, text = next(iter(spec.items()))
        source = _SOURCE_PARSERS[kind](text, where, problems)
        if source is None:
            continue
        if kind == "header" and source.text.lower() in credentials:
            problems.add(where, f"{source.text} carries a credential: it is never passed to a job")
            continue
        args[str(name)] = source
    return args


def _body_source(text: Any, where: str, problems: _Problems) -> ArgSource | None:
    if not isinstance(text, str):
        problems.add(f"{where}.body", "must be a JSON pointer (/a/0/b) or a dotted path (a.0.b)")
        return None
    if text == "" or text.startswith("/"):
        tokens = text.split("/")[1:]
        if any(re.search(r"~(?![01])", token) for token in tokens):
            problems.add(f"{where}.body", "a JSON pointer escapes '~' as ~0 and '/' as ~1")
            return None
        path = tuple(token.replace("~1", "/").replace("~0", "~") for token in tokens)
    else:
        path = tuple(text.split("."))
        if any(part == "" for part in path):
            problems.add(f"{where}.body", "a dotted path has no empty part (a.b.0)")
            return None
    return ArgSource("body", path, text)


def _named_source(kind: str, pattern: re.Pattern[str]
                  ) -> Callable[[Any, str, _Problems], ArgSource | None]:
    def parse(text: Any, where: str, problems: _Problems) -> ArgSource | None:
        if not isinstance(text, str) or not pattern.fullmatch(text):
            problems.add(f"{where}.{kind}", f"must be a {kind} parameter name")
            return None
        return ArgSource(kind, (text,), text)  # type: ignore[arg-type]
    return parse


def _value_source(value: Any, where: str, problems: _Problems) -> ArgSource | None:
    return ArgSource("value", value=value)


_SOURCE_PARSERS: Final[dict[str, Callable[[Any, str, _Problems], ArgSource | None]]] = {
    "body": _body_source, "query": _named_source("query", _QUERY),
    "header": _named_source("header", _HEADER), "value": _value_source}
