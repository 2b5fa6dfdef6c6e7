"""The container executor: runtime detection, the hardened ``run`` argv, the container actor."""

from ._actor import ContainerActor as ContainerActor
from ._actor import ContainerRef as ContainerRef
from ._actor import ContainerResult as ContainerResult
from ._actor import ContainerStopper as ContainerStopper
from ._actor import Stop as Stop
from ._argv import RUN_LABEL as RUN_LABEL
from ._argv import SECRETS_MOUNT as SECRETS_MOUNT
from ._argv import ContainerSpec as ContainerSpec
from ._argv import container_name as container_name
from ._argv import env_file_text as env_file_text
from ._argv import run_argv as run_argv
from ._inspect import ImageInfo as ImageInfo
from ._inspect import inspect_image as inspect_image
from ._inspect import pull_image as pull_image
from ._inspect import runtime_call as runtime_call
from ._reap import flwd_containers as flwd_containers
from ._reap import reap_orphans as reap_orphans
from ._reap import reap_run_containers as reap_run_containers
from ._runtime import RUNTIME_MEMORY as RUNTIME_MEMORY
from ._runtime import Runtime as Runtime
from ._runtime import detect_runtime as detect_runtime
from ._runtime import installed_runtimes as installed_runtimes
from ._runtime import require_runtime as require_runtime
from ._step import StepOutcome as StepOutcome
from ._step import run_container_step as run_container_step
