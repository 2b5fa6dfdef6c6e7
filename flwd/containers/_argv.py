"""The ``<runtime> run`` command line of one container step (sans-IO).

Every container gets the hardened defaults of CONTRACT §6; the loosening
flags appear only when the plan carries a policy decision that allowed them.
Values never go on the command line: the environment travels in an env file
(``--env-file``), secrets as files under ``/run/secrets``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: Containers labelled with it belong to flwd; the value is the run id.
RUN_LABEL = "flwd.run"
STEP_LABEL = "flwd.step"
PIDS_LIMIT = 512
SECRETS_MOUNT = "/run/secrets"

_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]+")


def container_name(run_id: str, step_id: str) -> str:
    """``flwd-<run>-<step>``, with characters a container name cannot have replaced by ``-``."""
    step = _NAME_UNSAFE.sub("-", step_id).strip("-.") or "step"
    return f"flwd-{run_id}-{step}"[:200]


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """Everything one ``run`` needs; built by the run actor from a step's ContainerPlan.

    ``run_container_step`` fills in ``env_file`` and ``env_names`` from the
    step's environment.
    """

    name: str
    run_id: str
    step_id: str
    image: str
    command: Sequence[str]
    job_dir: Path
    run_dir: Path
    network: str = "none"
    rootfs_writable: bool = False
    capabilities: Sequence[str] = ()
    cpu_millis: int | None = None
    memory_bytes: int | None = None
    extra_args: Sequence[str] = ()
    env_file: Path | None = None
    #: Names passed with ``--env NAME``: their values come from the runtime
    #: client's own environment (values with newlines cannot go in an env file).
    env_names: Sequence[str] = ()
    secrets_dir: Path | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


def run_argv(runtime: str, spec: ContainerSpec) -> list[str]:
    """The full argv of ``<runtime> run`` for ``spec``."""
    argv = [runtime, "run", "--rm", "--name", spec.name, "--init", "--pull=never",
            "--label", f"{RUN_LABEL}={spec.run_id}", "--label", f"{STEP_LABEL}={spec.step_id}"]
    for key, value in spec.labels.items():
        argv += ["--label", f"{key}={value}"]
    argv += ["--cap-drop=ALL", "--security-opt=no-new-privileges"]
    if not spec.rootfs_writable:
        argv.append("--read-only")
    argv += ["--network", spec.network or "none", f"--pids-limit={PIDS_LIMIT}"]
    argv += [f"--cap-add={cap}" for cap in spec.capabilities]
    if spec.cpu_millis is not None:
        argv.append(f"--cpus={spec.cpu_millis / 1000:g}")
    if spec.memory_bytes is not None:
        argv.append(f"--memory={spec.memory_bytes}")
    argv += ["--workdir", str(spec.run_dir)]
    if spec.env_file is not None:
        argv += ["--env-file", str(spec.env_file)]
    for name in spec.env_names:
        argv += ["--env", name]
    if spec.run_dir == spec.job_dir:
        argv += ["--volume", f"{spec.run_dir}:{spec.run_dir}:rw"]
    else:
        argv += ["--volume", f"{spec.job_dir}:{spec.job_dir}:ro",
                 "--volume", f"{spec.run_dir}:{spec.run_dir}:rw"]
    if spec.secrets_dir is not None:
        argv += ["--volume", f"{spec.secrets_dir}:{SECRETS_MOUNT}:ro"]
    argv += list(spec.extra_args)
    argv.append(spec.image)
    argv += list(spec.command)
    return argv


def stop_argv(runtime: str, name: str, grace: float) -> list[str]:
    return [runtime, "stop", f"--time={max(0, round(grace))}", name]


def kill_argv(runtime: str, name: str) -> list[str]:
    return [runtime, "kill", name]


def remove_argv(runtime: str, name: str, *, podman: bool) -> list[str]:
    return [runtime, "rm", "--force", *(["--ignore"] if podman else []), name]


def env_file_text(env: Mapping[str, str]) -> tuple[str, list[str]]:
    """(env file text, names whose values cannot be in an env file)."""
    lines, rest = [], []
    for key, value in env.items():
        if "\n" in value or "\r" in value or "\0" in value:
            rest.append(key)
        else:
            lines.append(f"{key}={value}")
    return "".join(line + "\n" for line in lines), rest
