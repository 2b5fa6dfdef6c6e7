"""One request to plan (or run) a job, and :func:`plan_request`, the one function that plans it.

Sans-IO: the catalog, the aliases, the policy bundle and the container runtime
are given (found by the caller); reading a script's first line is the only IO
``build_plan`` does. Both the engine (for the API, and later the UI and the
scheduler) and the CLI's local run call it; the engine journals the decisions of
a refused request (``flwd.policy.decisions_of`` on the error).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flwd.jobs import Alias, AliasIndex, Binding, Catalog, Job, bind_json
from flwd.policy import PolicyContext, Profile, resolve_profile

from ._build import Plan, build_plan
from ._container import uses_container

if TYPE_CHECKING:
    from flwd.containers import Runtime


@dataclass(frozen=True, slots=True)
class PlanRequest:
    """What a client asks to plan or run.

    ``job_id`` is a job id or an alias (with ``source``: a job of that source).
    ``args`` are the JSON arguments of the API; a client that binds arguments
    itself (the CLI reads secrets from files, stdin or a prompt) gives its
    ``binding`` and the job it resolved from its words (``resolved``) instead.
    """

    job_id: str
    args: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = None
    #: The security profile asked for, and where it came from (for its error).
    profile: str | None = None
    profile_from: str = "the request"
    binding: Binding | None = None
    resolved: tuple[Job, Alias | None] | None = None


@dataclass(frozen=True, slots=True)
class Planning:
    """What the host adds to every request: where it runs and under which policy."""

    workspace: Path
    scripts_root: Path
    policy: PolicyContext | None = None
    runtime: Runtime | None = None
    #: ``FLWD_PROFILE`` of the process, and the profile it was configured with.
    environment_profile: str | None = None
    configured_profile: str | None = None


def resolve_target(catalog: Catalog, aliases: AliasIndex, request: PlanRequest
                   ) -> tuple[Job, Alias | None]:
    """The job a request names (``source`` names a source already checked to exist).

    Raises:
        JobNotFound: no such job or alias.
    """
    if request.resolved is not None:
        return request.resolved
    job_id = request.job_id
    if request.source is not None and not job_id.casefold().startswith(
            f"{request.source.casefold()}/"):
        # {"job_id": "hello", "source": {"name": "extras"}} is "extras/hello".
        job_id = f"{request.source}/{job_id}"
    job = catalog.find(job_id)
    alias = None
    if job is None:
        alias = aliases.find(job_id) if request.source is None else None
        job = catalog.get(alias.target_id if alias is not None else job_id)
    return job, alias


def request_profile(request: PlanRequest, planning: Planning) -> Profile:
    """The effective profile: request > ``FLWD_PROFILE`` > configured > ``secure``."""
    return resolve_profile(requested=request.profile, requested_by=request.profile_from,
                           environment=planning.environment_profile,
                           configured=planning.configured_profile)


def needs_thread(job: Job) -> bool:
    """Planning ``job`` may run a program (cosign verifies an image signature)."""
    return job.is_addon or uses_container(job.config.executor, job.config.interpreter)


def plan_request(job: Job, alias: Alias | None, request: PlanRequest, planning: Planning
                 ) -> Plan:
    """Bind the request's arguments, resolve the profile and build the plan.

    Raises:
        ArgumentError: an argument is missing or invalid (one entry per argument).
        FlwdError: the policy refuses the request (its decisions are attached).
    """
    binding = (request.binding if request.binding is not None
               else bind_json(job.config.args, request.args, job_id=job.id))
    return build_plan(job, binding, profile=request_profile(request, planning),
                      workspace=planning.workspace, scripts_root=planning.scripts_root,
                      alias=alias, policy=planning.policy, runtime=planning.runtime)
