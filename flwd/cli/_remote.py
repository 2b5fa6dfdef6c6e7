"""Remote mode: the CLI as a client of a running ``flwd :serve`` (httpx on trio).

``--server URL`` / ``FLWD_SERVER`` selects it; the token comes only from
``FLWD_TOKEN`` (never from argv, where ``ps`` would show it) and is sent as
``Authorization: Bearer``. Nothing is resolved locally: the job and its argspec
come from ``GET /jobs/{id}``; its flags are parsed and typed with the same
parser and binder as a local run, and the values go to the server as JSON.

A run is ``POST /runs`` followed by the run's SSE stream, rendered by the same
``_Output`` as a local run (so the output and the exit status are the same).
A dropped stream is resumed with ``Last-Event-ID`` (bounded retries with
backoff): no event is lost or shown twice. The first Ctrl-C sends
``POST /runs/{id}:cancel`` and keeps streaming until ``run.finish``; a second
one exits at once (the server finishes terminating the run's processes).

Server problems (``application/problem+json``) become the same one-line errors
as local ones: 4xx → exit 2 (401/403 with a hint about ``FLWD_TOKEN``), 5xx and
connection errors → exit 1.

This module imports httpx; import it only in remote mode.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
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
from flwd.events import RUN_FINISH, STEP_LOG, TERMINAL_STATUSES, EventRecord, RunRow, now
from flwd.jobs import Arg, Binding
from flwd.policy import resolve_profile

from ._common import split_common_flags
from ._context import CONTEXT
from ._render import Style, render_plan, render_runs, table, use_color
from ._secret_input import bind_job_command_line
from ._sse_client import SSEDecoder

if TYPE_CHECKING:
    from ._run import _Output

TOKEN_ENV: Final = "FLWD_TOKEN"
#: Reads wait longer than the server's SSE keep-alive interval (15 s), so a
#: silent, dead connection shows as a read timeout and is resumed.
TIMEOUT: Final = httpx.Timeout(30.0, read=60.0)
#: Consecutive failed attempts to (re)open a run's event stream before giving up.
STREAM_RETRIES: Final = 10
PER_PAGE: Final = 200
#: Pages of ``GET /runs`` scanned to resolve a run id prefix.
MAX_SCAN_PAGES: Final = 25
_RUN_ID: Final = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_ARG_KEYS: Final = frozenset(Arg.model_fields) | {"minLength", "maxLength"}
_BY_CODE: Final = {spec.code: spec for spec in PROBLEMS.values()}

EXIT_OK, EXIT_FAILED, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 130, 143

Handler = Callable[[list[EventRecord]], Awaitable[None]]


def _dumps(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


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
                  workspace=run["workspace"] if isinstance(run.get("workspace"), str) else None)


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
                      params: Mapping[str, str | int] | None = None,
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
                   params: Mapping[str, str | int] | None = None) -> Any:
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


def _bind_here(args: Sequence[Arg], tokens: Sequence[str], *, job_id: str) -> Binding:
    """The job's flags bound on this machine, as locally: secrets named by ``--NAME-file`` or
    ``-`` are read here and travel only in the request body.

    Blocks the event loop on purpose: nothing else runs yet, a prompt must own the
    terminal, and a Ctrl-C there raises KeyboardInterrupt at once (in code that is not
    KI-protected, trio raises it where it lands).
    """
    return bind_job_command_line(args, tokens, job_id=job_id)


def request_body(job_id: str, values: Mapping[str, Any], profile: str | None) -> dict[str, Any]:
    """The body of ``POST /plans`` / ``POST /runs``. Secret values are sent as given: the
    server needs them (it never shows or stores them); they are never printed here."""
    body: dict[str, Any] = {"job_id": job_id, "args": dict(values)}
    if profile:
        # The same error as a local run for a bad name.
        resolve_profile(requested=profile, requested_by="--profile")
        body["requested_security_profile"] = profile
    return body


# -- flwd JOB [flags] ----------------------------------------------------------


def run_remote_job(server: str, tokens: Sequence[str]) -> int:
    return trio.run(_run_job, server, list(tokens))


async def _run_job(server: str, tokens: list[str]) -> int:
    from ._run import _Output, help_text, warn_short_secrets

    async with Client(server) as client:
        job, rest = await client.resolve_job(tokens)
        common, rest = split_common_flags(rest)
        if common.debug:
            CONTEXT.debug = True
        job_id = str(job["id"])
        invoked = _invoked_as(job)
        args = remote_args(job)
        if common.help:
            print(help_text(invoked.split("."), str(job.get("name") or job_id), job.get("summary"),
                            args))
            return EXIT_OK
        binding = _bind_here(args, rest, job_id=job_id)
        warn_short_secrets(binding)
        body = request_body(invoked, binding.values, common.profile)
        # The plan says whether output lines carry their step (a DAG) and
        # validates everything before a run exists.
        plan = await client.json("POST", "/plans", body=body)
        steps = plan.get("executor_preview", {}).get("composition") == "steps"
        output = _Output(common.json, prefix_steps=steps)
        return await _run(client, body, output, detach=common.detach)


async def _run(client: Client, body: dict[str, Any], output: _Output, *, detach: bool) -> int:
    caught: list[int] = []
    run_id = ""
    created = trio.Event()
    status = "failed"

    async def send_cancel() -> None:
        await created.wait()
        try:
            await client.request("POST", f"/runs/{run_id}:cancel")
        except FlwdError as exc:
            sys.stderr.write(f"flwd: warning: cannot cancel run {run_id}: {exc.one_line()}\n")

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        with trio.CancelScope() as abort:
            async with trio.open_nursery() as nursery:
                async def watch() -> None:
                    async for signum in signals:
                        caught.append(signum)
                        if len(caught) == 1:
                            nursery.start_soon(send_cancel)
                        else:  # the second press: leave now; the server keeps cancelling
                            abort.cancel()

                nursery.start_soon(watch)
                run = await client.create_run(body)
                run_id = str(run["id"])
                created.set()
                if detach:
                    _detached(run, client.server, output.as_json)
                    nursery.cancel_scope.cancel()
                    return EXIT_OK

                async def handle(records: list[EventRecord]) -> None:
                    output.write(records)
                    if output.broken and not caught:
                        caught.append(signal.SIGPIPE)
                        nursery.start_soon(send_cancel)

                status = await client.follow_run(run_id, handle)
                nursery.cancel_scope.cancel()
    if abort.cancelled_caught:
        if run_id and not output.as_json:
            sys.stderr.write(f"flwd: left run {run_id} to the server, which is canceling it\n")
        return EXIT_SIGTERM if caught[0] == signal.SIGTERM else EXIT_SIGINT
    if status == "completed":
        return EXIT_OK
    if status == "canceled":
        return EXIT_SIGTERM if caught and caught[0] == signal.SIGTERM else EXIT_SIGINT
    return EXIT_FAILED


def _detached(run: Mapping[str, Any], server: str, as_json: bool) -> None:
    if as_json:
        print(_dumps(run))
        return
    print(run["id"])
    sys.stderr.write(f"flwd: run {run['id']} {run.get('status', 'queued')} on {server}; "
                     f"follow it with 'flwd :logs {run['id']} --follow'\n")


# -- verbs ---------------------------------------------------------------------


def jobs(server: str, as_json: bool) -> int:
    return trio.run(_jobs, server, as_json)


async def _jobs(server: str, as_json: bool) -> int:
    listed: list[dict[str, Any]] = []
    broken = 0
    async with Client(server) as client:
        page = 1
        while True:
            response = await client.request("GET", "/jobs",
                                            params={"per_page": PER_PAGE, "page": page})
            batch = client.decode(response)
            listed += batch
            broken = _int_header(response, "X-Flwd-Discovery-Errors")
            total = _int_header(response, "X-Total-Count", len(listed))
            if not batch or len(listed) >= total:
                break
            page += 1
    # The server lists aliases among the jobs (``alias_of``) when the caller may see them.
    jobs_ = [entry for entry in listed if "alias_of" not in entry]
    aliases = [{"name": entry["id"], "target_path": str(entry["alias_of"]).replace(".", "/"),
                "target_id": entry["alias_of"],
                **({"description": entry["description"]} if entry.get("description") else {})}
               for entry in listed if "alias_of" in entry]
    if broken:
        sys.stderr.write(f"flwd: warning: the server at {server} skipped {broken} job "
                         f"config{'s' if broken > 1 else ''} with errors (see its log)\n")
    if as_json:
        print(_dumps({"jobs": jobs_, "aliases": aliases, "alias_collisions": {},
                      "alias_invalid": {}, "errors": [], "warnings": []}))
        return EXIT_OK
    if not jobs_:
        print(f"(no jobs on {server})")
        return EXIT_OK
    rows = [[str(job.get("id")), str(job.get("name")), str(job.get("summary") or "(no summary)")]
            for job in jobs_]
    if any(isinstance(job.get("source"), dict) for job in jobs_):  # as local mode does
        rows = [[*row, str((job.get("source") or {}).get("name", "-"))]
                for row, job in zip(rows, jobs_, strict=True)]
        print(table(["ID", "NAME", "SUMMARY", "SOURCE"], rows))
    else:
        print(table(["ID", "NAME", "SUMMARY"], rows))
    if aliases:
        print()
        print(table(["ALIAS", "RUNS", "DESCRIPTION"],
                    [[alias["name"], alias["target_id"], alias.get("description", "")]
                     for alias in aliases]))
    return EXIT_OK


def _int_header(response: httpx.Response, name: str, default: int = 0) -> int:
    value = response.headers.get(name, "")
    return int(value) if value.isdigit() else default


def _invoked_as(job: Mapping[str, Any]) -> str:
    """The name to send the server: the alias the job was reached through, if any
    (the server resolves it again and records it in the run's provenance)."""
    alias = job.get("alias")
    if isinstance(alias, dict) and isinstance(alias.get("name"), str):
        return str(alias["name"])
    return str(job["id"])


def plan(server: str, tokens: Sequence[str]) -> int:
    return trio.run(_plan, server, list(tokens))


async def _plan(server: str, tokens: list[str]) -> int:
    async with Client(server) as client:
        job, rest = await client.resolve_job(tokens)
        common, rest = split_common_flags(rest)
        job_id = str(job["id"])
        args = remote_args(job)
        # Checked here as locally (the server would answer 422 the same way).
        binding = _bind_here(args, rest, job_id=job_id)
        preview = await client.json("POST", "/plans",
                                    body=request_body(_invoked_as(job), binding.values,
                                                      common.profile))
    if common.json:
        print(_dumps(preview))
    else:
        print(render_plan(preview, Style(use_color(sys.stdout))))
    return EXIT_OK


def runs(server: str, job: str | None, status: str | None, limit: int, as_json: bool, *,
         workspaces: bool = False) -> int:
    """``:runs`` of a server: every run of its data dir (this directory means nothing
    to it); ``workspaces`` adds the WORKSPACE column."""
    return trio.run(_runs, server, job, status, limit, as_json, workspaces)


async def _runs(server: str, job: str | None, status: str | None, limit: int,
                as_json: bool, workspaces: bool) -> int:
    found: list[dict[str, Any]] = []
    per_page = min(limit, PER_PAGE)
    params: dict[str, str | int] = {"per_page": per_page}
    if job:
        params["job_id"] = job
    if status:
        params["status"] = status
    async with Client(server) as client:
        page = 1
        while len(found) < limit:
            batch = await client.json("GET", "/runs", params={**params, "page": page})
            found += batch
            if len(batch) < per_page:
                break
            page += 1
    found = found[:limit]
    if as_json:
        print(_dumps(found))
    else:
        print(render_runs([run_from_json(run) for run in found], Style(use_color(sys.stdout)),
                          workspaces=workspaces))
    return EXIT_OK


async def logs(server: str, run_ref: str, *, follow: bool, as_json: bool) -> int:
    from ._run import _Output, logs_exit_status

    output = _Output(as_json)

    async def handle(records: list[EventRecord]) -> None:
        output.write(records)

    async with Client(server) as client:
        run = await client.find_run(run_ref)
        run_id, final = str(run["id"]), str(run["status"])
        if follow and final not in TERMINAL_STATUSES:
            final = await client.follow_run(run_id, handle)
        else:
            final = await client.export_events(run_id, handle) or final
    return logs_exit_status(output, final, follow=follow)


def cancel(server: str, run_ref: str) -> int:
    return trio.run(_cancel, server, run_ref)


async def _cancel(server: str, run_ref: str) -> int:
    async with Client(server) as client:
        run = await client.find_run(run_ref)
        response = await client.request("POST", f"/runs/{run['id']}:cancel")
        answer = client.decode(response)
    if response.status_code == 202:
        print(f"cancel requested for run {run['id']}")
    else:
        print(f"run {run['id']} already finished ({answer.get('status')})")
    return EXIT_OK
