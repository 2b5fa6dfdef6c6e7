"""``RemoteBackend``: the verbs' work done by a running ``flwd :serve`` (``--server URL``).

Nothing is resolved locally: the job and its argspec come from ``GET /jobs/{id}``;
its flags are parsed and typed with the same parser and binder as a local run
(secrets are read here and travel only in the request body), and the values go
to the server as JSON.

A run is ``POST /runs`` followed by the run's SSE stream, rendered by the same
:class:`~flwd.cli._render.RunOutput` as a local run (so the output and the exit
status are the same). The first Ctrl-C sends ``POST /runs/{id}:cancel`` and keeps
streaming until ``run.finish``; a second one exits at once (the server finishes
terminating the run's processes).

This module imports httpx (through :mod:`flwd.cli._client`); import it only in
remote mode.
"""

from __future__ import annotations

import base64
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import trio

from flwd.errors import FlwdError, KvKeyRequired, UsageError
from flwd.events import TERMINAL_STATUSES, EventRecord
from flwd.jobs import Arg, Binding

from ._backend import (
    EXIT_OK,
    AliasRow,
    CancelAnswer,
    EventSink,
    JobListing,
    JobRow,
    RunListing,
    exit_status,
    next_fire_text,
    source_not_found,
)
from ._client import (
    PER_PAGE,
    Client,
    query_params,
    remote_args,
    request_body,
    run_from_json,
)
from ._render import dumps

if TYPE_CHECKING:
    from flwd.sources import SourceSpec
    from flwd.store import RunFilter


class RemoteBackend:
    """The :class:`~flwd.cli._backend.Backend` of one server.

    Its HTTP client is made on the first request (where ``FLWD_TOKEN`` is checked),
    so that a verb's own checks of its words come first, as they always did.
    """

    def __init__(self, server: str) -> None:
        self.server = server
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.server)
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client.

        **Cancellation:** shielded: closes anyway.
        """
        if self._client is not None:
            await self._client.__aexit__()

    # -- jobs ------------------------------------------------------------------
    async def list_jobs(self, *, report_problems: bool) -> JobListing:
        """Every page of ``GET /jobs``; the server lists aliases among the jobs
        (``alias_of``) when the caller may see them. What is wrong with the server's
        configs and aliases is ``GET /discovery``, asked only when a count of the
        first page says there is something (``report_problems`` is for a local
        workspace: the server logs its own).

        **Cancellation:** leaves nothing behind.
        """
        client = self.client
        listed: list[dict[str, Any]] = []
        page = 1
        problems = 0
        while True:
            response = await client.request("GET", "/jobs",
                                            params={"per_page": PER_PAGE, "page": page})
            batch = client.decode(response)
            listed += batch
            if page == 1:
                # No warnings count: a server older than that header; ask it.
                problems = (_int_header(response, "X-Flwd-Discovery-Errors")
                            + _int_header(response, "X-Flwd-Discovery-Warnings", 1))
            total = _int_header(response, "X-Total-Count", len(listed))
            if not batch or len(listed) >= total:
                break
            page += 1
        jobs = [entry for entry in listed if "alias_of" not in entry]
        aliases = [_alias_info(entry) for entry in listed if "alias_of" in entry]
        found = await client.json("GET", "/discovery") if problems else {}
        if not isinstance(found, dict):
            found = {}
        return JobListing(
            jobs=[JobRow(str(job.get("id")), str(job.get("name")),
                         str(job.get("summary") or "(no summary)"),
                         str((job.get("source") or {}).get("name", "-"))
                         if isinstance(job.get("source"), dict) else None,
                         next_fire_text(job.get("next_fire")))
                  for job in jobs],
            aliases=[AliasRow(alias["name"], alias["target_id"], alias.get("description", ""))
                     for alias in aliases],
            document={"jobs": jobs, "aliases": aliases,
                      **{key: found.get(key) or {}
                         for key in ("alias_collisions", "alias_invalid")},
                      **{key: found.get(key) or [] for key in ("errors", "warnings")}},
            empty=f"(no jobs on {self.server})")

    async def find_job(self, tokens: Sequence[str]) -> RemoteTarget:
        """The job the leading words name (the longest dotted prefix the server knows).

        **Cancellation:** leaves nothing behind.
        """
        job, rest = await self.client.resolve_job(tokens)
        return RemoteTarget(self, job, rest)

    # -- runs ------------------------------------------------------------------
    async def list_runs(self, where: RunFilter, *, limit: int, every: bool) -> RunListing:
        """Every run of the server's data dir (this directory means nothing to it):
        ``every`` only adds the WORKSPACE column.

        **Cancellation:** leaves nothing behind.
        """
        client = self.client
        found: list[dict[str, Any]] = []
        per_page = min(limit, PER_PAGE)
        params = httpx.QueryParams([("per_page", str(per_page)), *query_params(where)])
        page = 1
        while len(found) < limit:
            batch = await client.json("GET", "/runs", params=params.set("page", str(page)))
            found += batch
            if len(batch) < per_page:
                break
            page += 1
        found = found[:limit]
        return RunListing([run_from_json(run) for run in found], found)

    async def show_events(self, run_ref: str, write: Callable[[list[EventRecord]], None], *,
                          follow: bool) -> str:
        """The run's SSE stream until ``run.finish`` (``follow``), else its
        ``events.ndjson`` export.

        **Cancellation:** leaves nothing behind.
        """
        client = self.client

        async def handle(records: list[EventRecord]) -> None:
            write(records)

        run = await client.find_run(run_ref)
        run_id, final = str(run["id"]), str(run["status"])
        if follow and final not in TERMINAL_STATUSES:
            return await client.follow_run(run_id, handle)
        return await client.export_events(run_id, handle) or final

    async def cancel(self, run_ref: str) -> CancelAnswer:
        """``POST /runs/{id}:cancel``.

        **Cancellation:** the request may have reached the server.
        """
        client = self.client
        run = await client.find_run(run_ref)
        response = await client.request("POST", f"/runs/{run['id']}:cancel")
        answer = client.decode(response)
        if response.status_code == 202:
            return CancelAnswer(str(run["id"]), "requested")
        return CancelAnswer(str(run["id"]), "finished", str(answer.get("status")))

    # -- sources ---------------------------------------------------------------
    async def list_sources(self) -> list[dict[str, Any]]:
        """Every page of ``GET /sources``.

        **Cancellation:** leaves nothing behind.
        """
        client = self.client
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = await client.json("GET", "/sources", params={"per_page": 200, "page": page})
            found += batch
            if len(batch) < 200:
                return found
            page += 1

    async def add_source(self, body: Mapping[str, Any], spec: SourceSpec, *,
                         allow_paths: Sequence[str], git_hosts: Sequence[str]
                         ) -> tuple[dict[str, Any], bool]:
        """``POST /sources`` (201: a new source). The server's allow-list is its own.

        **Cancellation:** the request may have reached the server, which goes on.
        """
        if allow_paths or git_hosts:
            raise UsageError("--allow-path and --git-allow-host apply to local mode only",
                             hint="the server's allow-list is set by 'flwd :serve "
                                  "--allow-path DIR --git-allow-host HOST'")
        client = self.client
        response = await client.request("POST", "/sources", body=dict(body))
        document: dict[str, Any] = client.decode(response)
        return document, response.status_code == 201

    async def refresh_source(self, name: str) -> dict[str, Any]:
        """``POST /sources/{name}:refresh``.

        **Cancellation:** the request may have reached the server, which goes on.
        """
        client = self.client
        document: dict[str, Any] = await client.json("POST", f"{_source_path(name)}:refresh")
        return document

    async def remove_source(self, name: str) -> str:
        """``DELETE /sources/{name}``.

        **Cancellation:** the request may have reached the server, which goes on.
        """
        client = self.client
        await client.request("DELETE", _source_path(name))
        return name

    # -- Rule-Y KV ---------------------------------------------------------------
    async def kv_get(self, namespace: str, key: str) -> dict[str, Any]:
        """``GET /kv/{namespace}/{key}``.

        **Cancellation:** leaves nothing behind.
        """
        document: dict[str, Any] = await self.client.json("GET", _kv_path(namespace, key))
        return document

    async def kv_put(self, namespace: str, key: str, value: bytes) -> None:
        """``PUT /kv/{namespace}/{key}`` with ``{"value": base64}``.

        **Cancellation:** the request may have reached the server, which goes on.
        """
        await self.client.request("PUT", _kv_path(namespace, key),
                                  body={"value": base64.b64encode(value).decode("ascii")})

    async def kv_delete(self, namespace: str, key: str) -> None:
        """``DELETE /kv/{namespace}/{key}``.

        **Cancellation:** the request may have reached the server, which goes on.
        """
        await self.client.request("DELETE", _kv_path(namespace, key))

    # -- schedules -------------------------------------------------------------
    async def list_schedules(self) -> dict[str, Any]:
        """``GET /schedules``.

        **Cancellation:** leaves nothing behind.
        """
        document: dict[str, Any] = await self.client.json("GET", "/schedules")
        return document

    async def pause_schedule(self, name: str, paused: bool) -> dict[str, Any]:
        """``POST /schedules/{name}:pause`` (or ``:resume``).

        **Cancellation:** the change may have reached the server.
        """
        verb = "pause" if paused else "resume"
        document: dict[str, Any] = await self.client.json(
            "POST", f"/schedules/{quote(name, safe='/')}:{verb}")
        return document

    async def trigger_schedule(self, name: str, output: EventSink) -> int:
        """``POST /schedules/{name}:trigger``, then the run's SSE stream until it ends.

        **Cancellation:** the run may have been started (the server owns it).
        """
        client = self.client
        run = await client.json("POST", f"/schedules/{quote(name, safe='/')}:trigger")

        async def handle(records: list[EventRecord]) -> None:
            output.write(records)

        status = await client.follow_run(str(run["id"]), handle)
        return exit_status(status, output.canceled_by_sigterm)

    async def kv_list(self, namespace: str, *, prefix: str, cursor: str | None,
                      limit: int) -> dict[str, Any]:
        """``GET /kv/{namespace}?prefix=&cursor=&limit=``.

        **Cancellation:** leaves nothing behind.
        """
        params: dict[str, str | int] = {"prefix": prefix, "limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        document: dict[str, Any] = await self.client.json("GET", _kv_path(namespace),
                                                          params=params)
        return document


def _kv_path(namespace: str, key: str | None = None) -> str:
    """``/kv/NS[/KEY]``, every character of the words escaped but letters and digits
    (a '.' too: a client library would resolve a key of '..' away)."""
    if key == "":
        raise KvKeyRequired("the key is empty", hint="name a key after the namespace")

    def escape(word: str) -> str:
        try:
            return quote(word, safe="").replace(".", "%2E")
        except UnicodeEncodeError:
            raise UsageError("a KV namespace and key are UTF-8 text") from None

    return f"/kv/{escape(namespace)}" + ("" if key is None else f"/{escape(key)}")


def _source_path(name: str) -> str:
    if not name or name.strip(".") == "":
        raise source_not_found(name)
    return f"/sources/{quote(name, safe='')}"


def _alias_info(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An alias entry of ``GET /jobs`` as ``:jobs --json`` lists it locally."""
    source = entry.get("source")
    return {"name": entry["id"], "target_path": str(entry["alias_of"]).replace(".", "/"),
            "target_id": entry["alias_of"],
            **({"source": str(source["name"])} if isinstance(source, dict)
               and source.get("type") == "alias" and source.get("name") else {}),
            **({"description": entry["description"]} if entry.get("description") else {})}


def _int_header(response: httpx.Response, name: str, default: int = 0) -> int:
    value = response.headers.get(name, "")
    return int(value) if value.isdigit() else default


@dataclass(frozen=True, slots=True)
class RemoteTarget:
    """A job of the server (its ``GET /jobs/{id}`` document) and the words after its name."""

    backend: RemoteBackend
    job: dict[str, Any]
    rest: list[str]

    @property
    def job_id(self) -> str:
        return str(self.job["id"])

    @property
    def words(self) -> list[str]:
        return self.invoked_as.split(".")

    @property
    def name(self) -> str:
        return str(self.job.get("name") or self.job_id)

    @property
    def summary(self) -> str | None:
        summary = self.job.get("summary")
        return None if summary is None else str(summary)

    @property
    def invoked_as(self) -> str:
        """The name to send the server: the alias the job was reached through, if any
        (the server resolves it again and records it in the run's provenance)."""
        alias = self.job.get("alias")
        if isinstance(alias, dict) and isinstance(alias.get("name"), str):
            return str(alias["name"])
        return self.job_id

    def args(self) -> Sequence[Arg]:
        return remote_args(self.job)

    async def plan(self, binding: Binding, profile: str | None) -> dict[str, Any]:
        """``POST /plans`` (checked here as locally: the server would answer 422 the same way).

        **Cancellation:** leaves nothing behind.
        """
        preview: dict[str, Any] = await self.backend.client.json(
            "POST", "/plans", body=request_body(self.invoked_as, binding.values, profile))
        return preview

    async def prepare_run(self, binding: Binding, profile: str | None) -> RemoteLaunch:
        """``POST /plans``: the plan says whether output lines carry their step (a DAG),
        and validates everything before a run exists.

        **Cancellation:** leaves nothing behind.
        """
        body = request_body(self.invoked_as, binding.values, profile)
        plan = await self.backend.client.json("POST", "/plans", body=body)
        steps = plan.get("executor_preview", {}).get("composition") == "steps"
        return RemoteLaunch(self.backend.client, body, steps)


@dataclass(frozen=True, slots=True)
class RemoteLaunch:
    """A run the server planned, to be created with ``POST /runs``."""

    client: Client
    body: dict[str, Any]
    prefix_steps: bool

    async def run(self, output: EventSink, *, detach: bool) -> int:
        """Create the run and follow it (with ``detach``, only create it).

        **Cancellation:** not expected; a run already created goes on on the server.
        """
        client = self.client
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
                    run = await client.create_run(self.body)
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
        by_sigterm = bool(caught) and caught[0] == signal.SIGTERM
        if abort.cancelled_caught:
            if run_id and not output.as_json:
                sys.stderr.write(f"flwd: left run {run_id} to the server, which is canceling it\n")
            return exit_status("canceled", by_sigterm)
        return exit_status(status, by_sigterm)


def _detached(run: Mapping[str, Any], server: str, as_json: bool) -> None:
    if as_json:
        print(dumps(run))
        return
    print(run["id"])
    sys.stderr.write(f"flwd: run {run['id']} {run.get('status', 'queued')} on {server}; "
                     f"follow it with 'flwd :logs {run['id']} --follow'\n")
