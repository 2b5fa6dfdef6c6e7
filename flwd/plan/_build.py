"""Plans: what a run of a job with given arguments will do, before it does it (sans-IO).

A :class:`Plan` is both the preview ``flwd :plan`` prints and the recipe the
run actor executes, so the preview cannot drift from what runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from flwd.errors import (
    AddonRunUnsupported,
    ConfigInvalid,
    ContainerRuntimeUnavailable,
    FlwdError,
    PolicyDenied,
)
from flwd.jobs import NOTHING_TO_RUN, Alias, Binding, Job, check_paths
from flwd.policy import (
    Decision,
    ImageTrust,
    IsolationRequest,
    OverrideAllowances,
    PolicyBundle,
    PolicyContext,
    Profile,
    attach_decisions,
    decisions_of,
    evaluate_overrides,
)

from ._commands import command_is_bash, display_command, script_command
from ._container import (
    ContainerPlan,
    container_command,
    interpreter_image,
    plan_container,
    uses_container,
)

if TYPE_CHECKING:
    from flwd.containers import Runtime


@dataclass(frozen=True, slots=True)
class StepPlan:
    id: str
    script: Path
    argv: list[str]
    bash: bool
    needs: tuple[str, ...] = ()
    #: Set for container steps: ``argv`` then runs inside this container.
    container: ContainerPlan | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    job: Job
    binding: Binding
    profile: Profile
    workspace: Path
    scripts_root: Path
    #: "scripts": the NNN_ files one after another; "steps": a DAG.
    composition: Literal["scripts", "steps"]
    steps: list[StepPlan]
    decisions: list[Decision] = field(default_factory=list)
    #: The alias the job was invoked through, if any.
    alias: Alias | None = None
    #: The container runtime container steps run with.
    runtime: Runtime | None = None
    #: The signature check of the job's one image: its container (every NNN_ script
    #: runs in the same one), an add-on's image, a DAG of exactly one step (reference
    #: §5); None when the verify mode is ``disabled`` or the job has no single image.
    image_trust: ImageTrust | None = None
    #: The environment its host steps start with (inherited variables, ``PATH``) when it
    #: is not that of the process running it: a thin client's, whose command line a
    #: server runs. Never journaled nor shown (it may hold anything).
    host_env: Mapping[str, str] | None = field(default=None, repr=False, compare=False)
    #: Seconds between TERM and KILL when it is cancelled, when not the engine's own
    #: (that client's ``FLWD_GRACE``).
    grace: float | None = None

    @property
    def runnable(self) -> bool:
        """False for an add-on job without a ``command``: it can be planned, not run."""
        return not (self.job.is_addon and self.job.command is None)

    def require_runnable(self) -> None:
        """Raises AddonRunUnsupported for a plan that cannot become a run (see ``runnable``)."""
        if not self.runnable:
            # Which add-on, as the reference says it (§8.5 step 5): the source as
            # plans show it, and the manifest's summary (name, id, version, jobs).
            source = self.provenance()["source"]
            raise AddonRunUnsupported(
                f"add-on job {self.job.id} declares no command, so it can be planned but "
                "not run", hint="add 'command' (the argv to run in the image) to its entry "
                                "in /flwd-addon/manifest.yaml and rebuild the image",
                source=source, manifest=dict(source.get("metadata", {}).get("manifest") or {}))

    @property
    def sequential(self) -> bool:
        """Steps run one after another, in declaration order: the ``NNN_`` files, and
        ``composition: steps`` when no step declares ``needs`` (a chain). As soon as
        one step declares ``needs``, the steps form a graph and run when their needs
        have completed — several at once when they can."""
        return self.composition == "scripts" or not any(step.needs for step in self.steps)

    @property
    def warnings(self) -> list[dict[str, str]]:
        """What the plan warns about beside the policy's decisions: a job with nothing to
        run (``job.nothing.to.run``, the discovery warning). Plans list them with their
        ``policy_findings`` (the reference's one list of findings); runs in ``run.start``.
        """
        if self.job.nothing_to_run is None or self.steps:
            return []
        return [{"code": NOTHING_TO_RUN, "level": "warning", "message": self.job.nothing_to_run}]

    @property
    def uses_containers(self) -> bool:
        return any(step.container is not None for step in self.steps)

    @property
    def executor(self) -> Literal["proc", "container"]:
        """How the steps run: ``container`` (``executor: container``, an
        ``interpreter: container:IMAGE``, an add-on's image) or ``proc`` (host processes).

        One vocabulary for plans (``executor_preview.executor``), runs and ``run.start``.
        """
        config = self.job.config
        if self.job.is_addon or uses_container(config.executor, config.interpreter):
            return "container"
        return config.executor

    @property
    def runtime_kind(self) -> str | None:
        """The container runtime a ``container`` run uses (``podman``, ``docker``); None
        for a host job, or while no runtime is configured."""
        if self.runtime is None or not (self.uses_containers or self.job.is_addon):
            return None
        return self.runtime.kind

    @property
    def env_inheritance(self) -> bool:
        return any(d.subject == "env.inheritance" and d.decision == "allowed"
                   for d in self.decisions)

    def provenance(self) -> dict[str, Any]:
        rel = _relative(self.job.dir, self.workspace)
        out: dict[str, Any] = {
            "canonical_id": self.job.id,
            "canonical_path": self.job.id.replace(".", "/"),
            "source": {
                "name": self.job.source or "workspace",
                "type": "local",
                "ref": rel,
                "resolved_ref": str(self.job.dir),
            } if self.job.origin is None else {**self.job.origin, "job_path": rel},
        }
        if self.alias is not None:
            out["invoked_path"] = self.alias.name
            out["alias"] = {key: value for key, value in self.alias.to_json().items()
                            if key != "target_id"}
        return out

    def to_json(self) -> dict[str, Any]:
        config = self.job.config
        out: dict[str, Any] = {
            "job_id": self.job.id,
            "name": self.job.name,
        }
        if self.job.summary:
            out["summary"] = self.job.summary
        out["effective_argspec"] = {"args": [arg.to_json() for arg in config.args]}
        out["executor_preview"] = self._preview()
        if self.job.tools:
            # Listed, not looked for on this host: "unknown", as the reference says.
            out["requirements"] = {"tools": [dict(tool) for tool in self.job.tools],
                                   "status": "unknown"}
        out["steps"] = [self._step_json(step) for step in self.steps]
        out["resolved_args"] = self.binding.redacted()
        out["security_profile"] = self.profile
        findings = [{"code": d.code, "level": d.level, "message": d.reason}
                    for d in self.decisions] + self.warnings
        if findings:
            out["policy_findings"] = findings
        if self.image_trust is not None:
            out["image_trust"] = self.image_trust.to_json()
        if config.timeout is not None:
            out["timeout_seconds"] = config.timeout
        out["error_handling"] = config.error_handling.to_json()
        out["provenance"] = self.provenance()
        return out


    def _preview(self) -> dict[str, Any]:
        """``executor_preview``: how the job runs (executor, interpreter, its container)."""
        config = self.job.config
        # ``interpreter: container:IMAGE`` runs in a container too (reference: "container").
        preview: dict[str, Any] = {"executor": self.executor}
        if config.interpreter:
            preview["interpreter"] = config.interpreter
        if self.composition == "steps":
            preview["composition"] = "steps"
        if self.runtime_kind is not None:
            preview["runtime"] = self.runtime_kind
            if self.composition == "scripts" and self.steps:
                container = self.steps[0].container
                assert container is not None
                preview["container"] = container.to_json()
        if self.job.is_addon:
            origin = self.job.origin or {}
            preview["container_image"] = origin.get("ref")
            if origin.get("digest"):
                preview["resolved_digest"] = origin["digest"]
            preview["pull_policy"] = origin.get("pull_policy")
            preview["runnable"] = self.runnable
        elif self.composition == "steps":
            # A DAG's job-level image, when it has one (steps may each name theirs).
            if config.container is not None and config.container.image:
                preview["container_image"] = config.container.image
        elif self.steps and self.steps[0].container is not None:
            preview["container_image"] = self.steps[0].container.requested_image
        return preview

    def _step_json(self, step: StepPlan) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": step.id,
            "script": _relative(step.script, self.workspace),
            "command": display_command(step.argv, self.workspace),
        }
        if step.needs:
            out["needs"] = list(step.needs)
        container = step.container
        if container is not None:
            if self.composition == "steps":
                out["container"] = container.to_json()
            out["container_image"] = container.requested_image or container.image
            if container.trust is not None:
                out["image_trust"] = container.trust.to_json()
        return out


def _single_trust(composition: str, steps: list[StepPlan],
                  job_container: ContainerPlan | None) -> ImageTrust | None:
    """``image_trust`` of a plan: of its one image, when it has exactly one."""
    if job_container is not None:
        return job_container.trust
    if composition == "steps" and len(steps) == 1 and steps[0].container is not None:
        return steps[0].container.trust
    return None


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def _step_script(job_dir: Path, script: str, root: Path, config_path: str, step_id: str) -> Path:
    path = (job_dir / script).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ConfigInvalid(
            f"{config_path}: step '{step_id}' script '{script}' is outside the scripts root",
            hint="keep step scripts inside the scripts directory",
        )
    if not path.is_file():
        raise ConfigInvalid(f"{config_path}: step '{step_id}' script '{script}' does not exist")
    return path


def build_plan(job: Job, binding: Binding, *, profile: Profile, workspace: Path,
               scripts_root: Path, allowances: OverrideAllowances | None = None,
               alias: Alias | None = None, policy: PolicyContext | None = None,
               runtime: Runtime | None = None) -> Plan:
    """Plan a run of ``job``.

    ``policy`` carries the policy bundle and the image verifier (``allowances``
    alone is the older way to give just the bundle's overrides); ``runtime``
    is the container runtime found on this host, if any.

    Raises:
        ContainerRuntimeUnavailable: a container job and no runtime.
        PolicyDenied, ImageRegistryNotAllowed, ImageSignatureRequired,
        ResourcesInvalid: the policy refuses the job; the decisions taken,
            the denial last, are on the error (``flwd.policy.decisions_of``).
        ImageRefInvalid / ConfigInvalid / ExecutorUnavailable: a step cannot be run.
        MixedExecutors: a step of a ``composition: steps`` job sets ``executor``.
        ArgsInvalid: a ``format: file``/``directory`` argument names none on this
            host (relative paths start at the workspace, where host scripts run).
    """
    if job.roots is not None:  # a source's job runs in its own checkout
        workspace, scripts_root = job.roots
    config = job.config
    config_path = _relative(job.config_path, workspace)
    config.require_one_executor(config_path)
    if policy is None:
        policy = PolicyContext(PolicyBundle(overrides=allowances or OverrideAllowances()))
    containerized = uses_container(config.executor, config.interpreter)
    if containerized and runtime is None:
        raise ContainerRuntimeUnavailable(
            f"job {job.id} runs in a container, but no container runtime is available "
            "(podman or docker)",
            hint="install podman (preferred) or docker; a server started with "
                 "--no-containers cannot run container jobs")
    decisions: list[Decision] = []
    job_container: ContainerPlan | None = None
    if job.is_addon:
        return _addon_plan(job, binding, profile=profile, workspace=workspace,
                           scripts_root=scripts_root, alias=alias, policy=policy,
                           runtime=runtime)
    if not containerized:
        # Host scripts start in the workspace: that is where their paths are looked up.
        check_paths(config.args, binding.values, workspace, job_id=job.id)
    if containerized and not config.is_dag:
        job_container, decisions = plan_container(
            config.container, interpreter_image(config.interpreter), profile=profile,
            policy=policy, env_inheritance=config.env_inheritance)
    steps: list[StepPlan] = []
    if config.is_dag:
        for step in config.steps:
            script = _step_script(job.dir, step.script, scripts_root, config_path, step.id)
            container = None
            if containerized:
                try:
                    container, taken = plan_container(
                        config.container_for(step), None, profile=profile, policy=policy,
                        env_inheritance=False, step_label=f"step {step.id}")
                except FlwdError as exc:
                    attach_decisions(exc, [*decisions, *decisions_of(exc)])
                    raise
                decisions.extend(taken)
                argv = container_command(config.interpreter, script, config_path=config_path)
            else:
                argv = script_command(config.interpreter, script, config_path=config_path)
            steps.append(StepPlan(step.id, script, argv,
                                  container is None and command_is_bash(argv),
                                  tuple(step.needs), container))
        composition: Literal["scripts", "steps"] = "steps"
    else:
        for name in job.scripts:
            script = job.dir / name
            if job_container is not None:
                argv = container_command(config.interpreter, script, config_path=config_path)
                steps.append(StepPlan(name, script, argv, False, container=job_container))
            else:
                argv = script_command(config.interpreter, script, config_path=config_path)
                steps.append(StepPlan(name, script, argv, command_is_bash(argv)))
        composition = "scripts"
    if job_container is None:
        # Container jobs decided env inheritance with their container.
        evaluation = evaluate_overrides(profile, policy.bundle.overrides,
                                        IsolationRequest(env_inheritance=config.env_inheritance))
        decisions.extend(evaluation.decisions)
        try:
            evaluation.raise_if_denied()
        except PolicyDenied as exc:
            attach_decisions(exc, decisions)
            raise
    return Plan(job=job, binding=binding, profile=profile, workspace=workspace,
                scripts_root=scripts_root, composition=composition, steps=steps,
                decisions=decisions, alias=alias, runtime=runtime if containerized else None,
                image_trust=_single_trust(composition, steps, job_container))


def _addon_plan(job: Job, binding: Binding, *, profile: Profile, workspace: Path,
                scripts_root: Path, alias: Alias | None, policy: PolicyContext,
                runtime: Runtime | None) -> Plan:
    """A job of an OCI add-on: its manifest ``command`` in the add-on image.

    The image is the source's, pinned by digest when one is known (``on-add``,
    or ``on-run`` after a successful run); the registry allow-list and the
    signature policy are checked on it like on any container image, and the
    isolation is the profile's (no overrides: a manifest cannot ask for any).
    """
    config = job.config
    container, decisions = plan_container(config.container, None, profile=profile,
                                          policy=policy, env_inheritance=False)
    origin = job.origin or {}
    # The job names the source's image; it runs pinned by digest when one is known.
    container = replace(container, requested_image=origin.get("ref") or container.image)
    if not origin.get("digest"):
        decisions.append(Decision(
            "oci.digest", "allowed", "oci.digest.missing",
            f"resolved digest unavailable; pull_policy={origin.get('pull_policy', 'on-run')}: "
            f"the run uses {container.image} as found (pulled if absent)", "warning"))
    steps = []
    if job.command is not None:
        step_id = job.id.rpartition("/")[2]
        steps.append(StepPlan(step_id, job.config_path, list(job.command), False,
                              container=container))
    return Plan(job=job, binding=binding, profile=profile, workspace=workspace,
                scripts_root=scripts_root, composition="scripts", steps=steps,
                decisions=decisions, alias=alias, runtime=runtime, image_trust=container.trust)
