"""Plans: what a run of a job with given arguments will do, before it does it (sans-IO).

A :class:`Plan` is both the preview ``flwd :plan`` prints and the recipe the
run actor executes, so the preview cannot drift from what runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from flwd.errors import ConfigInvalid
from flwd.jobs import Alias, Binding, Job
from flwd.policy import (
    Decision,
    IsolationRequest,
    OverrideAllowances,
    Profile,
    evaluate_overrides,
)

from ._commands import command_is_bash, display_command, script_command


@dataclass(frozen=True, slots=True)
class StepPlan:
    id: str
    script: Path
    argv: list[str]
    bash: bool
    needs: tuple[str, ...] = ()


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
        preview: dict[str, Any] = {"executor": config.executor}
        if config.interpreter:
            preview["interpreter"] = config.interpreter
        if self.composition == "steps":
            preview["composition"] = "steps"
        out: dict[str, Any] = {
            "job_id": self.job.id,
            "name": self.job.name,
        }
        if self.job.summary:
            out["summary"] = self.job.summary
        out["effective_argspec"] = {"args": [arg.to_json() for arg in config.args]}
        out["executor_preview"] = preview
        out["steps"] = [
            {
                "id": step.id,
                "script": _relative(step.script, self.workspace),
                "command": display_command(step.argv, self.workspace),
                **({"needs": list(step.needs)} if step.needs else {}),
            }
            for step in self.steps
        ]
        out["resolved_args"] = self.binding.redacted()
        out["security_profile"] = self.profile
        if self.decisions:
            out["policy_findings"] = [
                {"code": d.code, "level": d.level, "message": d.reason} for d in self.decisions
            ]
        if config.timeout is not None:
            out["timeout_seconds"] = config.timeout
        out["error_handling"] = config.error_handling.model_dump()
        out["provenance"] = self.provenance()
        return out


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
               alias: Alias | None = None) -> Plan:
    """Plan a run of ``job``.

    Raises:
        PolicyDenied: the profile refuses an override the job asks for.
        ConfigInvalid / ExecutorUnavailable: a script cannot be run.
    """
    if job.roots is not None:  # a source's job runs in its own checkout
        workspace, scripts_root = job.roots
    config = job.config
    config_path = _relative(job.config_path, workspace)
    evaluation = evaluate_overrides(
        profile, allowances or OverrideAllowances(),
        IsolationRequest(env_inheritance=config.env_inheritance),
    )
    evaluation.raise_if_denied()
    steps: list[StepPlan] = []
    if config.composition == "steps":
        for step in config.steps:
            script = _step_script(job.dir, step.script, scripts_root, config_path, step.id)
            argv = script_command(config.interpreter, script, config_path=config_path)
            steps.append(StepPlan(step.id, script, argv, command_is_bash(argv), tuple(step.needs)))
        composition: Literal["scripts", "steps"] = "steps"
    else:
        for name in job.scripts:
            script = job.dir / name
            argv = script_command(config.interpreter, script, config_path=config_path)
            steps.append(StepPlan(name, script, argv, command_is_bash(argv)))
        composition = "scripts"
    return Plan(job=job, binding=binding, profile=profile, workspace=workspace,
                scripts_root=scripts_root, composition=composition, steps=steps,
                decisions=evaluation.decisions, alias=alias)
