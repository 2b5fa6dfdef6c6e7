"""Jobs: ``GET /jobs``, ``GET /discovery``, ``GET /jobs/<id>``, and ``POST /plans``."""

from __future__ import annotations

import time
from typing import Any

import trio
from quart import Blueprint, Response, jsonify, request

from flwd.jobs import Job, discovery_problems
from flwd.schedule import next_fire

from ._models import RunRequest
from ._request import json_body, page, plan_request, sees_aliases
from ._state import current_state

blueprint = Blueprint("jobs", __name__)


def job_json(job: Job, next_fire: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": job.id, "name": job.name}
    if job.summary:
        out["summary"] = job.summary
    out["path"] = job.rel_dir
    out["args"] = [arg.to_json() for arg in job.config.args]
    if job.source:
        out["source"] = {"name": job.source,
                         "type": str((job.origin or {}).get("type", "local"))}
    if next_fire is not None:
        out["next_fire"] = next_fire
    return out


async def next_fires() -> dict[str, dict[str, Any]]:
    """Each scheduled job's next fire (the soonest of its active schedules).

    Cancellation: nothing is left behind (it only reads).
    """
    engine = current_state().engine
    book = await engine.schedules()
    if not len(book):
        return {}
    states = await engine.schedule_states()
    now = time.time()
    fires = {job_id: next_fire(book.of_job(job_id), states, now)
             for job_id in {schedule.job_id for schedule in book}}
    return {job_id: fire for job_id, fire in fires.items() if fire is not None}


@blueprint.get("/jobs")
async def list_jobs() -> Response:
    """A page of jobs (and of aliases, for who may see them).

    Cancellation: nothing is left behind (here as in every read below).
    """
    state = current_state()
    arrived = trio.current_time()
    first, per_page = page(request.args)
    # What was written before the request is listed: the cached catalog may be up to a
    # second older (another client's check, or the scheduler's).
    catalog = await state.engine.catalog(fresh_since=arrived)
    aliases = await state.engine.aliases(fresh_since=arrived)
    hooks = await state.hooks.index(state.engine, dev=state.options.dev)
    fires = await next_fires()
    entries = [job_json(job, fires.get(job.id)) for job in catalog.jobs]
    if sees_aliases(state.options.aliases_public):
        for alias in aliases.listing():
            target = job_json(catalog.get(alias.target_id))
            entries.append({"id": alias.name, "name": alias.name,
                            **({"description": alias.description} if alias.description
                               else {}),
                            "path": target["path"], "args": target["args"],
                            "alias_of": alias.target_id,
                            # The reference's mark of a source's alias.
                            **({"source": {"name": alias.source, "type": "alias"}}
                               if alias.source else {})})
        entries.sort(key=lambda entry: entry["id"].casefold())
    page_entries = entries[(first - 1) * per_page: first * per_page]
    response = jsonify(page_entries)
    problems = discovery_problems(catalog, aliases, hooks.issues)
    errors = str(len(problems["errors"]) + len(aliases.collisions))
    response.headers["X-Flwd-Discovery-Errors"] = errors
    # The reference's name of the same count (its clients read that one).
    response.headers["X-Flowd-Discovery-Errors"] = errors
    # With both counts at 0, GET /discovery has nothing to say: a client asks it only
    # when one is not (the CLI's :jobs does).
    response.headers["X-Flwd-Discovery-Warnings"] = str(len(problems["warnings"]))
    response.headers["X-Total-Count"] = str(len(entries))
    return response


@blueprint.get("/discovery")
async def list_discovery_issues() -> Response:
    # GET /jobs is a page of jobs (its X-Flwd-Discovery-Errors counts these):
    # what kept a config out of it — and why a job id is ambiguous — is here, with
    # the unusable aliases by name for who may see the aliases (as in GET /jobs).
    state = current_state()
    arrived = trio.current_time()
    catalog = await state.engine.catalog(fresh_since=arrived)
    aliases = await state.engine.aliases(fresh_since=arrived)
    hooks = await state.hooks.index(state.engine, dev=state.options.dev)
    document: dict[str, Any] = discovery_problems(catalog, aliases, hooks.issues)
    if sees_aliases(state.options.aliases_public):
        named = aliases.to_json()
        document["alias_collisions"] = named["alias_collisions"]
        document["alias_invalid"] = named["alias_invalid"]
    return jsonify(document)


@blueprint.get("/jobs/<path:job_id>")
async def get_job(job_id: str) -> Response:
    # Running through an alias needs no elevated scope, so neither does
    # resolving one name (listing them all does, see GET /jobs).
    job, alias = await current_state().engine.find_job(job_id)
    detail = job_json(job, (await next_fires()).get(job.id))
    if alias is not None:
        detail["alias"] = alias.to_json()
    detail["executor"] = job.config.executor
    detail["scripts"] = list(job.scripts)
    if job.config.timeout is not None:
        detail["timeout_seconds"] = job.config.timeout
    return jsonify(detail)


@blueprint.post("/plans")
async def create_plan() -> Response:
    """What ``POST /runs`` would run, with its policy decisions; nothing is journaled."""
    body, _ = await json_body(RunRequest)
    plan = await current_state().engine.plan(plan_request(body))
    return jsonify(plan.to_json())
