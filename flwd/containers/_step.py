"""One container step of a run: environment, mounts, the container actor, the result.

Called by the run actor for steps whose plan has a container; the run actor
stays the owner of the run directory, the secret files and the events.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from flwd.errors import FlwdError

from ._actor import ContainerActor, ContainerStopper, OutputSink
from ._argv import SECRETS_MOUNT, ContainerSpec, container_name, env_file_text
from ._inspect import inspect_image
from ._runtime import Runtime

if TYPE_CHECKING:
    from flwd.plan import Plan, StepPlan

#: Host variables never inherited into a container, even with env inheritance:
#: they describe the host, and would break the image's own setup.
_NOT_INHERITED = frozenset({"PATH", "HOME", "HOSTNAME", "PWD", "OLDPWD", "SHLVL", "_",
                            "TERM", "LD_PRELOAD", "LD_LIBRARY_PATH", "TMPDIR", "SHELL",
                            "USER", "LOGNAME", "MAIL"})


@dataclass(frozen=True, slots=True)
class StepOutcome:
    exit_code: int
    #: Extra ``step.finish`` data: ``container {name, image, runtime, pull_seconds?}``.
    data: dict[str, Any]


def container_env(plan: Plan, step: StepPlan, run_id: str, run_dir: Path,
                  secret_names: list[str], host_env: Mapping[str, str]) -> dict[str, str]:
    """The environment inside the container; secrets only as ``ARG_<NAME>_FILE`` paths."""
    env: dict[str, str] = {}
    if plan.env_inheritance:
        env.update({k: v for k, v in host_env.items()
                    if k not in _NOT_INHERITED and not k.startswith("FLWD_")})
    env.update(plan.job.config.env)
    env.update(plan.binding.env())
    env["FLWD_ARGS_JSON"] = plan.binding.args_json()
    for name in secret_names:
        env[f"ARG_{name.upper().replace('-', '_')}_FILE"] = f"{SECRETS_MOUNT}/{name}"
    env.update({
        "FLWD_RUN_ID": run_id,
        "FLWD_RUN_DIR": str(run_dir),
        "FLWD_JOB_ID": plan.job.id,
        "FLWD_JOB_DIR": str(plan.job.dir),
        "FLWD_STEP": step.id,
        "FLWD_STEP_KEY": f"{run_id}/{step.id}",
    })
    return env


async def run_container_step(plan: Plan, step: StepPlan, *, run_id: str, run_dir: Path,
                             secret_names: list[str], secrets_dir: Path | None,
                             sink: OutputSink, stopper: ContainerStopper, grace: float
                             ) -> StepOutcome:
    """Run ``step`` in its container and return its exit status.

    ``secrets_dir`` holds the files of ``secret_names`` (written by the run actor);
    it is mounted read-only at ``/run/secrets``.

    Cancellation: the container is stopped with the ladder and removed
    (shielded, bounded) before ``Cancelled`` propagates.

    Raises:
        ContainerFailed, ContainerNameConflict: the runtime could not run it.
    """
    container = step.container
    runtime: Runtime | None = plan.runtime
    assert container is not None and runtime is not None
    name = container_name(run_id, step.id)
    env = container_env(plan, step, run_id, run_dir, secret_names, os.environ)
    text, multiline = env_file_text(env)
    env_file = run_dir / f".env-{name}"
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    # Markers let start-up recovery find the runtime client of a dead owner.
    client_env = {**os.environ, "FLWD_RUN_ID": run_id, "FLWD_STEP_KEY": f"{run_id}/{step.id}",
                  **{key: env[key] for key in multiline}}
    spec = ContainerSpec(
        name=name, run_id=run_id, step_id=step.id, image=container.image,
        command=step.argv, job_dir=plan.job.dir, run_dir=run_dir, network=container.network,
        rootfs_writable=container.rootfs_writable, capabilities=container.capabilities,
        cpu_millis=container.cpu_millis, memory_bytes=container.memory_bytes,
        extra_args=container.extra_args, env_file=env_file, env_names=multiline,
        secrets_dir=secrets_dir if secret_names else None)
    actor = ContainerActor(runtime, spec, sink, grace=grace,
                           secrets=plan.binding.secret_values(), client_env=client_env)
    data: dict[str, Any] = {"container": {"name": name, "image": container.image,
                                          "runtime": runtime.kind}}
    try:
        async with trio.open_nursery() as nursery:
            stopper.attach(await nursery.start(actor.run))
    except BaseExceptionGroup as group:
        # The actor's own failure (pull, name conflict) is a step result.
        only = group.exceptions[0] if len(group.exceptions) == 1 else None
        if isinstance(only, FlwdError):
            raise only from None
        raise
    finally:
        try:
            env_file.unlink()
        except OSError:
            pass
    result = actor.result
    assert result is not None
    data["container"]["run_seconds"] = round(result.run_seconds, 6)
    if result.pull_seconds is not None:
        data["container"]["pull_seconds"] = round(result.pull_seconds, 6)
    origin = plan.job.origin or {}
    if plan.job.is_addon and not origin.get("digest") and result.exit_code == 0:
        # An on-run add-on learns its digest from the image a run succeeded with.
        from flwd.policy import image_repository

        info = await inspect_image(runtime, container.image,
                                   image_repository(container.image), client_env)
        if info is not None and info.digest:
            data["container"]["digest"] = info.digest
    return StepOutcome(result.exit_code, data)
