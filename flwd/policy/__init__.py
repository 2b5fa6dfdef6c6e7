"""Security profiles, override decisions and (later) the signed policy bundle."""

from ._overrides import Decision as Decision
from ._overrides import Evaluation as Evaluation
from ._overrides import IsolationRequest as IsolationRequest
from ._overrides import OverrideAllowances as OverrideAllowances
from ._overrides import evaluate_overrides as evaluate_overrides
from ._profiles import DEFAULT_PROFILE as DEFAULT_PROFILE
from ._profiles import PROFILES as PROFILES
from ._profiles import Profile as Profile
from ._profiles import parse_profile as parse_profile
from ._profiles import resolve_profile as resolve_profile
