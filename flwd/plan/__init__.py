"""Plan building: resolved arguments, steps and commands, policy decisions, provenance."""

from ._build import Plan as Plan
from ._build import StepPlan as StepPlan
from ._build import build_plan as build_plan
from ._commands import display_command as display_command
from ._commands import script_command as script_command
from ._container import uses_container as uses_container
from ._environment import step_environment as step_environment
from ._request import Planning as Planning
from ._request import PlanRequest as PlanRequest
from ._request import needs_thread as needs_thread
from ._request import plan_request as plan_request
from ._request import request_profile as request_profile
from ._request import resolve_target as resolve_target
