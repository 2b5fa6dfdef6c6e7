"""``flwd JOB [flags]``: plan and run a job, streaming its output live (local or remote).

The job's words are resolved by the backend, its flags parsed and bound here
(secrets are read on this machine, see :mod:`flwd.cli._secret_input`), then the
backend plans the run and runs it; :class:`~flwd.cli._render.RunOutput` prints
its events as they come. Ctrl-C: the first press asks the run to cancel
gracefully (exit 130), a second one stops at once (see each backend).
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence

import trio

from flwd.jobs import Binding

from ._backend import EXIT_OK, Backend
from ._common import split_common_flags
from ._context import CONTEXT
from ._mode import choose_backend, closing
from ._render import RunOutput, help_text
from ._secret_input import bind_job_command_line

#: Below this length a secret is likely to occur by chance in ordinary output, where
#: masking it (which flwd still does) mangles the text.
SHORT_SECRET = 4


def run_job_command(tokens: Sequence[str]) -> int:
    """``flwd JOB [flags]`` (dispatched before cyclopts: the most common command stays lean)."""
    # Chosen before trio starts: the backend's imports run as plain code.
    backend = choose_backend()
    # What the imports made lives as long as the process: the collector need not walk
    # it again at each full collection while the run goes on. It was off while they ran
    # (flwd._entry): on again for the run itself.
    gc.freeze()
    gc.enable()
    return trio.run(_run_job, backend, list(tokens))


async def _run_job(backend: Backend, tokens: list[str]) -> int:
    async with closing(backend):
        return await run_job(backend, tokens)


async def run_job(backend: Backend, tokens: Sequence[str]) -> int:
    """Resolve, bind, plan and run the job ``tokens`` name; the run's exit status.

    **Cancellation:** not expected (the verb owns the process).
    """
    target = await backend.find_job(tokens)
    common, rest = split_common_flags(target.rest)
    if common.debug:
        CONTEXT.debug = True
    job_id = target.job_id
    args = target.args()
    if common.help:
        print(help_text(target.words, target.name, target.summary, args))
        return EXIT_OK
    # Blocks the event loop on purpose: nothing else runs yet, a prompt must own the
    # terminal, and a Ctrl-C there raises KeyboardInterrupt at once.
    binding = bind_job_command_line(args, rest, job_id=job_id)
    warn_short_secrets(binding)
    launch = await target.prepare_run(binding, common.profile)
    output = RunOutput(common.json, prefix_steps=launch.prefix_steps)
    return await launch.run(output, detach=common.detach)


def warn_short_secrets(binding: Binding) -> None:
    """One warning line per secret argument shorter than :data:`SHORT_SECRET` characters."""
    for line in short_secret_warnings(binding):
        sys.stderr.write(line)


def short_secret_warnings(binding: Binding) -> list[str]:
    """The lines of :func:`warn_short_secrets`."""
    return [f"flwd: warning: --{name} is shorter than {SHORT_SECRET} characters; every "
            "occurrence of it in the output is still masked as [secret]\n"
            for name, value in binding.secrets.items() if len(value) < SHORT_SECRET]
