"""The environment of one step, on the host or in a container (sans-IO).

One recipe for both executors, so a variable added for one cannot be
forgotten for the other. What differs is said by the caller: where the step
runs (which host variables it may inherit, whether it gets the host's
``PATH``), where it finds its secret files, and the bash profile of a bash
step on the host.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ._build import Plan, StepPlan

#: ``PATH`` of a host step when the host has none.
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

#: Host variables never inherited into a container, even with env inheritance:
#: they describe the host, and would break the image's own setup.
NOT_INHERITED_IN_CONTAINER = frozenset({
    "PATH", "HOME", "HOSTNAME", "PWD", "OLDPWD", "SHLVL", "_", "TERM", "LD_PRELOAD",
    "LD_LIBRARY_PATH", "TMPDIR", "SHELL", "USER", "LOGNAME", "MAIL"})

#: The reference's names (flowd's, §4.2) of flwd's own variables: a job written for
#: flowd reads ``$RUN_DIR`` (its bundled ``demo-dag-container`` writes
#: ``$RUN_DIR/state.txt``). Each holds the value of the ``FLWD_*`` variable it names,
#: where the step has that one (a container step has no data dir variable).
REFERENCE_NAMES = {
    "RUN_DIR": "FLWD_RUN_DIR",
    "FLOWD_RUN_DIR": "FLWD_RUN_DIR",
    "FLOWD_DATA_DIR": "FLWD_DATA_DIR",
    "DATA_DIR": "FLWD_DATA_DIR",
}
#: Of :data:`REFERENCE_NAMES`, the generic ones a job's ``env`` may set for itself
#: (as with flowd, where the job's ``env.DATA_DIR`` is what the job then sees).
_JOB_MAY_SET = frozenset({"DATA_DIR"})


def step_environment(plan: Plan, step: StepPlan, *, run_id: str, run_dir: Path,
                     host_env: Mapping[str, str], secret_files: Mapping[str, str],
                     in_container: bool, bash_env: Path | None = None,
                     local_access: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment ``step`` of run ``run_id`` starts with.

    Later entries win: inherited host variables (only when the plan allows
    inheritance), the host ``PATH`` (host steps only, always, so a step without
    inheritance still finds its interpreter), the job's ``env``, the
    arguments (``ARG_<NAME>``, ``FLWD_ARGS_JSON``), the secrets, flwd's own
    ``FLWD_*`` variables and their reference names (:data:`REFERENCE_NAMES`), and
    ``BASH_ENV`` when ``bash_env`` is given.

    A container inherits no variable that describes the host
    (:data:`NOT_INHERITED_IN_CONTAINER`) nor any of flwd's (``FLWD_*``, their
    reference names); the image's own ``PATH`` stays. ``local_access`` are flwd's
    variables through which a host step reaches this flwd's data dir without a
    token (``FLWD_DATA_DIR``, ``FLWD_KV_NAMESPACES``: ``flwd :kv`` in a job); a
    container step gets none of them, as the data dir is not mounted in it.
    Secret values are never in the environment: each secret
    is an ``ARG_<NAME>_FILE`` variable holding its path in ``secret_files``
    (name → path as the step sees it: on the host, or under the container's
    secrets mount), in the order of ``secret_files``.
    """
    env: dict[str, str] = {}
    if plan.env_inheritance:
        env.update({k: v for k, v in host_env.items()
                    if not in_container
                    or (k not in NOT_INHERITED_IN_CONTAINER and not k.startswith("FLWD_")
                        and k not in REFERENCE_NAMES)})
    if not in_container:
        env["PATH"] = host_env.get("PATH", DEFAULT_PATH)
    env.update(plan.job.config.env)
    env.update(plan.binding.env())
    env["FLWD_ARGS_JSON"] = plan.binding.args_json()
    for name, path in secret_files.items():
        env[f"ARG_{name.upper().replace('-', '_')}_FILE"] = path
    env.update({
        "FLWD_RUN_ID": run_id,
        "FLWD_RUN_DIR": str(run_dir),
        "FLWD_JOB_ID": plan.job.id,
        "FLWD_JOB_DIR": str(plan.job.dir),
        "FLWD_STEP": step.id,
        "FLWD_STEP_KEY": f"{run_id}/{step.id}",
    })
    if local_access and not in_container:
        env.update(local_access)
    for name, ours in REFERENCE_NAMES.items():
        if ours in env and not (name in _JOB_MAY_SET and name in plan.job.config.env):
            env[name] = env[ours]
    if bash_env is not None:
        env["BASH_ENV"] = str(bash_env)
    return env
