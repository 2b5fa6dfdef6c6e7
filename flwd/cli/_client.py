"""The HTTP client of a running ``flwd :serve`` (httpx on trio), for :mod:`flwd.cli._remote`.

The token comes only from ``FLWD_TOKEN`` (never from argv, where ``ps`` would show
it) and is sent as ``Authorization: Bearer``. Server problems
(``application/problem+json``) become the same one-line errors as local ones:
4xx → exit 2 (401/403 with a hint about ``FLWD_TOKEN``), 5xx and connection
errors → exit 1. A run's event stream is resumed after a drop with
``Last-Event-ID`` (bounded retries with backoff): no event is lost or shown twice.
Events arrive as envelopes and become :class:`~flwd.events.EventRecord`\\s, so a
remote run renders exactly like a local one.

This module imports httpx; import it only in remote mode.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

import httpx
import trio
from pydantic import ValidationError

from flwd import __version__
from flwd.errors import (
    PROBLEMS,
    FlwdError,
    JobNotFound,
    ProblemSpec,
    RemoteProblem,
    RunNotFound,
    ServerUnreachable,
    UsageError,
)
from flwd.events import RUN_FINISH, STEP_LOG, EventRecord, RunRow, format_ts, now
from flwd.jobs import Arg
from flwd.policy import resolve_profile

from ._sse_client import SSEDecoder

if TYPE_CHECKING:
    from flwd.store import RunFilter

TOKEN_ENV: Final = "FLWD_TOKEN"
#: Reads wait longer than the server's SSE keep-alive interval (15 s), so a
#: silent, dead connection shows as a read timeout and is resumed.
TIMEOUT: Final = httpx.Timeout(30.0, read=60.0)
#: Consecutive failed attempts to (re)open a run's event stream before giving up.
STREAM_RETRIES: Final = 10
PER_PAGE: Final = 200
#: A query string: a mapping, or QueryParams (where a name may repeat: ``arg.NAME``).
Params = Mapping[str, str | int] | httpx.QueryParams
#: Pages of ``GET /runs`` scanned to resolve a run id prefix.
MAX_SCAN_PAGES: Final = 25
_RUN_ID: Final = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_ARG_KEYS: Final = frozenset(Arg.model_fields) | {"minLength", "maxLength"}
_BY_CODE: Final = {spec.code: spec for spec in PROBLEMS.values()}

Handler = Callable[[list[EventRecord]], Awaitable[None]]


def backoff(attempt: int) -> float:
    """Seconds to wait before reconnect ``attempt`` (1-based): 0.1, 0.2, 0.4 … capped at 5."""
    return float(min(0.1 * 2 ** (attempt - 1), 5.0))


def parse_ts(value: object) -> float:
    """An RFC 3339 timestamp of an event or run as epoch seconds (exactly what
    :func:`flwd.events.format_ts` printed, so a record re-renders byte for byte)."""
    if isinstance(value, str):
        try:
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=UTC).timestamp()
        except ValueError:
            try:
                return datetime.fromisoformat(value).timestamp()
            except ValueError:
                pass
    return now()


def record_from_envelope(event: Mapping[str, Any]) -> EventRecord:
    """An :class:`EventRecord` from an envelope ``{seq, run_id, job_id, type, ts, data}``.

    A ``step.log`` event becomes a one-line chunk, so ``_Output`` prints it like
    a local run does and ``ndjson()`` gives back the same envelope.
    """
    data = event.get("data")
    data = data if isinstance(data, dict) else {}
    run_id, job_id = str(event.get("run_id", "")), str(event.get("job_id", ""))
    type_, ts, seq = str(event.get("type", "")), parse_ts(event.get("ts")), int(event["seq"])
    message = data.get("message")
    if type_ == STEP_LOG and isinstance(message, str) and "\n" not in message:
        return EventRecord(run_id, job_id, type_, ts,
                           {"step": data.get("step"), "channel": data.get("channel")},
                           lines=message.encode("utf-8", "replace"), seq=seq)
    return EventRecord(run_id, job_id, type_, ts, data, seq=seq)


def run_from_json(run: Mapping[str, Any]) -> RunRow:
    """A :class:`RunRow` from the run JSON of the API (for ``render_runs``)."""
    def ts(name: str) -> float | None:
        return parse_ts(run[name]) if run.get(name) else None

    result = run.get("result")
    return RunRow(id=str(run.get("id")), job_id=str(run.get("job_id")),
                  status=str(run.get("status")), created_at=ts("created_at") or now(),
                  started_at=ts("started_at"), finished_at=ts("finished_at"),
                  exit_code=run.get("exit_code"), error=run.get("error"),
                  profile=run.get("security_profile"),
                  args=(result.get("resolved_args") or {}) if isinstance(result, dict) else {},
                  workspace=run["workspace"] if isinstance(run.get("workspace"), str) else None,
                  executor=run["executor"] if isinstance(run.get("executor"), str) else None,
                  runtime=run["runtime"] if isinstance(run.get("runtime"), str) else None)


def _job_path(job_id: str) -> str:
    # Keep '/' (source-namespaced ids) but never send a dot segment a client
    # library or proxy would normalise away.
    return "/".join(quote(part, safe="") if part.strip(".") else part.replace(".", "%2E")
                    for part in job_id.split("/"))


class Client:
    """An httpx client for one server; errors become :class:`FlwdError`\\s."""

    def __init__(self, server: str, token: str | None = None) -> None:
        self.server = server
        raw = token if token is not None else os.environ.get(TOKEN_ENV, "")
        self.token = raw.strip() or None
        if self.token and not (self.token.isascii() and self.token.isprintable()
                               and " " not in self.token):
            raise UsageError(f"{TOKEN_ENV} does not hold a valid token (printable ASCII, "
                             "no spaces)", hint="set it to a token of the server")
        headers = {"User-Agent": f"flwd/{__version__}", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        # Plain http never negotiates TLS (and redirects are not followed), so skip
        # loading the CA bundle (~50 ms); https verifies certificates as usual.
        verify = not server.startswith("http://")
        self.http = httpx.AsyncClient(base_url=server, headers=headers, timeout=TIMEOUT,
                                      verify=verify)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        with trio.CancelScope(shield=True):
            await self.http.aclose()

    # -- errors ------------------------------------------------------------------
    def unreachable(self, reason: object) -> ServerUnreachable:
        text = str(reason) or type(reason).__name__
        return ServerUnreachable(f"cannot reach the flwd server at {self.server}: {text}",
                                 hint="is 'flwd :serve' running there? check --server or "
                                      "FLWD_SERVER")

    def problem(self, response: httpx.Response) -> FlwdError:
        """The error for a 4xx/5xx answer (the body must have been read)."""
        status = response.status_code
        reason = response.reason_phrase or f"HTTP {status}"
        document: Any = None
        if "json" in response.headers.get("Content-Type", ""):
            try:
                document = response.json()
            except ValueError:
                document = None
        if not isinstance(document, dict):
            document = {}
        detail = str(document.get("detail") or document.get("title") or f"HTTP {status} {reason}")
        if status >= 500:
            return self.unreachable(f"{detail} (HTTP {status})" if document else detail)
        code = str(document.get("code") or f"http.{status}")
        known = _BY_CODE.get(code)
        if known is not None:
            exit_status = known.exit_status
        elif status in (408, 410, 429):  # not the caller's mistake: retrying may work
            exit_status = 1
        else:
            exit_status = 2
        hint = None
        if status == 401:
            detail = f"the flwd server at {self.server} refused the request: {detail}"
            hint = ("set FLWD_TOKEN to a token of this server (minted there with "
                    "'flwd :tokens create')" if not self.token else
                    "FLWD_TOKEN holds a token this server does not accept; check it, or mint "
                    "one there with 'flwd :tokens create'")
        elif status == 403 and known is None:  # not a domain refusal (source.not.allowed)
            detail = f"the flwd server at {self.server} refused the request: {detail}"
            hint = "put a token with that scope in FLWD_TOKEN"
        errors = [{"arg": str(e.get("arg", "")), "message": str(e.get("message", ""))}
                  for e in document.get("errors") or [] if isinstance(e, dict)]
        spec = ProblemSpec(status, str(document.get("title") or reason), code, exit_status)
        return RemoteProblem(detail, spec=spec, hint=hint, errors=errors,
                             field_prefix="--" if code == "E_ARGS" else "")

    # -- requests ----------------------------------------------------------------
    async def request(self, method: str, path: str, *, body: Any = None,
                      params: Params | None = None,
                      headers: Mapping[str, str] | None = None) -> httpx.Response:
        try:
            response = await self.http.request(method, path, json=body, params=params,
                                               headers=headers)
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from None
        if response.status_code >= 400:
            raise self.problem(response)
        return response

    async def json(self, method: str, path: str, *, body: Any = None,
                   params: Params | None = None) -> Any:
        response = await self.request(method, path, body=body, params=params)
        return self.decode(response)

    def decode(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise self.unreachable(f"{response.request.method} {response.request.url.path} "
                                   "answered something that is not JSON") from None

    async def create_run(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /runs``; retried on network errors under one Idempotency-Key (no double run)."""
        headers = {"Idempotency-Key": f"flwd-cli-{uuid.uuid4().hex}"}
        for attempt in range(1, 4):
            try:
                response = await self.http.post("/runs", json=body, headers=headers)
            except httpx.TransportError as exc:
                if attempt == 3:
                    raise self.unreachable(exc) from None
                await trio.sleep(backoff(attempt))
                continue
            if response.status_code >= 400:
                raise self.problem(response)
            run: dict[str, Any] = self.decode(response)
            return run
        raise AssertionError("unreachable")  # pragma: no cover

    async def find_run(self, ref: str) -> dict[str, Any]:
        """The run named by an id, a unique prefix of one (4+ characters), or ``last``.

        Raises:
            RunNotFound: no such run, or an ambiguous prefix (as locally).
        """
        if ref == "last":
            runs = await self.json("GET", "/runs", params={"per_page": 1})
            if not runs:
                raise RunNotFound("no run 'last'", hint="'flwd :runs' lists runs")
            found: dict[str, Any] = runs[0]
            return found
        if _RUN_ID.fullmatch(ref):
            try:
                found = await self.json("GET", f"/runs/{ref}")
                return found
            except RemoteProblem as exc:
                if exc.problem.status != 404:
                    raise
        matches: list[dict[str, Any]] = []
        if len(ref) >= 4:
            for page in range(1, MAX_SCAN_PAGES + 1):
                runs = await self.json("GET", "/runs", params={"per_page": PER_PAGE, "page": page})
                matches += [run for run in runs if str(run.get("id", "")).startswith(ref)]
                if len(matches) > 1 or len(runs) < PER_PAGE:
                    break
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise RunNotFound(f"run id prefix '{ref}' is ambiguous",
                              hint="give more characters of the run id")
        raise RunNotFound(f"no run '{ref}'", hint="'flwd :runs' lists runs")

    async def resolve_job(self, tokens: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
        """The job the leading words name (the longest dotted prefix the server knows)."""
        words: list[str] = []
        for token in tokens:
            if token.startswith("-"):
                break
            words.append(token)
        if not words:
            raise UsageError("no job given", hint="run 'flwd :jobs' to list jobs")
        first: RemoteProblem | None = None
        for count in range(len(words), 0, -1):
            job_id = ".".join(words[:count])
            try:
                job: dict[str, Any] = await self.json("GET", f"/jobs/{_job_path(job_id)}")
            except RemoteProblem as exc:
                if exc.problem.status != 404:
                    raise
                if first is None or (first.problem.code != "job.not.found"
                                     and exc.problem.code == "job.not.found"):
                    first = exc
                continue
            return job, list(tokens[count:])
        if first is not None and first.problem.code == "job.not.found":
            raise first
        raise RemoteProblem(f"unknown job '{'.'.join(words)}'", hint="run 'flwd :jobs' to list jobs",
                            spec=PROBLEMS[JobNotFound])

    # -- events ------------------------------------------------------------------
    async def follow_run(self, run_id: str, handle: Handler) -> str:
        """Stream a run's events to ``handle`` until ``run.finish``; return the final status.

        The stream is resumed after a drop with ``Last-Event-ID`` (the last seq
        handled), so each event is handled exactly once.
        """
        last: int | None = None
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
            if last is not None:
                headers["Last-Event-ID"] = str(last)
            error: object = "the event stream ended before the run finished"
            wait = 0.0  # a 503 streams.busy (--max-streams reached) names it in Retry-After
            try:
                async with self.http.stream("GET", f"/runs/{run_id}/events",
                                            headers=headers) as response:
                    if response.status_code == 204:  # the stream already ended for us
                        return str((await self.json("GET", f"/runs/{run_id}"))["status"])
                    if response.status_code >= 400:
                        await response.aread()
                        problem = self.problem(response)
                        if response.status_code < 500:
                            raise problem
                        error = problem.detail
                        wait = _retry_after(response)
                    else:
                        decoder = SSEDecoder()
                        async for chunk in response.aiter_bytes():
                            records = []
                            for frame in decoder.feed(chunk):
                                event = _envelope(frame.data)
                                if event is None or (last is not None and event["seq"] <= last):
                                    continue
                                records.append(record_from_envelope(event))
                                last = event["seq"]
                            if not records:
                                continue
                            failures = 0
                            await handle(records)
                            if records[-1].type == RUN_FINISH:
                                return str(records[-1].data.get("status", "failed"))
            except httpx.TransportError as exc:
                error = exc
            failures += 1
            if failures > STREAM_RETRIES:
                lost = self.unreachable(error)
                lost.hint = (f"the run may still be going on the server; follow it with "
                             f"'flwd :logs {run_id} --follow'")
                raise lost
            await trio.sleep(max(backoff(failures), wait))

    async def export_events(self, run_id: str, handle: Handler) -> str | None:
        """Every journaled event of a run (``events.ndjson``); the run.finish status if any."""
        status: str | None = None
        busy = 0
        try:
            while True:
                async with self.http.stream("GET", f"/runs/{run_id}/events.ndjson") as response:
                    if response.status_code == 503 and busy < STREAM_RETRIES:
                        # streams.busy (--max-streams reached): nothing was sent yet.
                        await response.aread()
                        busy += 1
                        await trio.sleep(max(backoff(busy), _retry_after(response)))
                        continue
                    if response.status_code >= 400:
                        await response.aread()
                        raise self.problem(response)
                    rest = b""
                    async for chunk in response.aiter_bytes():
                        lines = (rest + chunk).split(b"\n")
                        rest = lines.pop()
                        records = [record_from_envelope(event) for line in lines
                                   if (event := _envelope(line)) is not None]
                        if records:
                            await handle(records)
                            if records[-1].type == RUN_FINISH:
                                status = str(records[-1].data.get("status"))
                    break
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from None
        return status


def _retry_after(response: httpx.Response) -> float:
    """The seconds of a ``Retry-After: N`` answer (0 when absent or a date), at most 5."""
    value = response.headers.get("Retry-After", "")
    return float(min(int(value), 5)) if value.isascii() and value.isdigit() else 0.0


def _envelope(raw: str | bytes) -> dict[str, Any] | None:
    """A decoded event envelope, or None for anything that is not one."""
    if not raw.strip():
        return None
    try:
        event = json.loads(raw)
    except ValueError:
        return None
    if (not isinstance(event, dict) or not isinstance(event.get("seq"), int)
            or not isinstance(event.get("type"), str)):
        return None
    return event


def remote_args(job: Mapping[str, Any]) -> list[Arg]:
    """The job's argspec from ``GET /jobs/{id}`` as :class:`Arg` models (unknown keys dropped)."""
    try:
        return [Arg.model_validate({key: value for key, value in spec.items() if key in _ARG_KEYS})
                for spec in job.get("args") or []]
    except (ValidationError, AttributeError) as exc:
        raise ServerUnreachable(
            f"the server's argspec of job {job.get('id')} cannot be used by this flwd: "
            f"{' '.join(str(exc).split())}",
            hint="use a flwd CLI of the same version as the server") from None


def request_body(job_id: str, values: Mapping[str, Any], profile: str | None) -> dict[str, Any]:
    """The body of ``POST /plans`` / ``POST /runs``. Secret values are sent as given: the
    server needs them (it never shows or stores them); they are never printed here."""
    body: dict[str, Any] = {"job_id": job_id, "args": dict(values)}
    if profile:
        # The same error as a local run for a bad name.
        resolve_profile(requested=profile, requested_by="--profile")
        body["requested_security_profile"] = profile
    return body


def query_params(where: RunFilter) -> list[tuple[str, str]]:
    """``GET /runs``' query for a history filter (the server checks it again; the
    workspace is not sent: a server's history is its own)."""
    params: list[tuple[str, str]] = []
    if where.job_id:
        params.append(("job_id", where.job_id))
    params += [("status", status) for status in where.statuses]
    if where.since is not None:
        params.append(("since", format_ts(where.since)))
    if where.until is not None:
        params.append(("until", format_ts(where.until)))
    params += [(f"arg.{name}", value) for name, value in where.args]
    if where.trigger is not None:
        kind, name = where.trigger
        params.append(("trigger", kind if name is None else f"{kind}:{name}"))
    return params
