"""One container step of a run: env file, the container actor, the result.

Called by the run actor for steps whose plan has a container, with a
:class:`ContainerSpec` and the container's environment built from the plan;
the run actor stays the owner of the run directory, the secret files and the
events.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from flwd.errors import FlwdError
from flwd.observe import UNOBSERVED, Observer

from ._actor import ContainerActor, ContainerStopper, OutputSink
from ._argv import ContainerSpec, env_file_text
from ._inspect import inspect_image
from ._runtime import Runtime


@dataclass(frozen=True, slots=True)
class StepOutcome:
    exit_code: int
    #: Extra ``step.finish`` data: ``container {name, image, runtime, pull_seconds?}``.
    data: dict[str, Any]


async def run_container_step(runtime: Runtime, spec: ContainerSpec, *, env: Mapping[str, str],
                             secrets: Sequence[str], learn_digest: bool, sink: OutputSink,
                             stopper: ContainerStopper, grace: float,
                             observer: Observer = UNOBSERVED) -> StepOutcome:
    """Run ``spec`` with ``runtime`` and return its exit status.

    ``env`` is the environment inside the container (secrets only as
    ``ARG_<NAME>_FILE`` paths under ``spec.secrets_dir``'s mount); it travels
    in an env file written here, so ``spec``'s ``env_file`` and ``env_names``
    are set here too. ``secrets`` are the values masked in the output. With
    ``learn_digest`` (an add-on job with no pinned digest), a successful run
    reports the image's digest as ``container.digest``. ``observer`` is told of the
    image's pull, when it had to be pulled.

    Cancellation: the container is stopped with the ladder and removed
    (shielded, bounded) before ``Cancelled`` propagates; the env file is removed.

    Raises:
        ContainerFailed, ContainerNameConflict: the runtime could not run it.
    """
    name, run_id = spec.name, spec.run_id
    text, multiline = env_file_text(env)
    env_file = spec.run_dir / f".env-{name}"
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    # Markers let start-up recovery find the runtime client of a dead owner.
    client_env = {**os.environ, "FLWD_RUN_ID": run_id,
                  "FLWD_STEP_KEY": f"{run_id}/{spec.step_id}",
                  **{key: env[key] for key in multiline}}
    spec = dataclasses.replace(spec, env_file=env_file, env_names=multiline)
    actor = ContainerActor(runtime, spec, sink, grace=grace, secrets=secrets,
                           client_env=client_env, observer=observer)
    data: dict[str, Any] = {"container": {"name": name, "image": spec.image,
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
    if learn_digest and result.exit_code == 0:
        # An on-run add-on learns its digest from the image a run succeeded with.
        from flwd.policy import image_repository

        info = await inspect_image(runtime, spec.image, image_repository(spec.image),
                                   client_env)
        if info is not None and info.digest:
            data["container"]["digest"] = info.digest
    return StepOutcome(result.exit_code, data)
