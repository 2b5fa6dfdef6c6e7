"""Inbound webhooks: ``POST /hooks/<name>`` starts a job, once the request has proved
where it comes from.

Sans-IO but for reading a secret or ``flwd.yaml`` (:func:`read_secret`,
:func:`load_hooks`, blocking): the definitions (:func:`parse_hook`,
:func:`index_hooks`), what a request maps to (:func:`map_args`), the checks
(:func:`check_peer`, :func:`delivery_of`, :func:`verify_hmac`, :func:`verify_token`)
and how each refusal is answered (:data:`REFUSALS`). The HTTP adapter is
``flwd.http``'s; the run starts through ``Engine.submit`` like any other.
"""

from ._args import map_args as map_args
from ._args import parse_body as parse_body
from ._args import resolve as resolve
from ._budget import RejectionBudget as RejectionBudget
from ._index import Declaration as Declaration
from ._index import HookIndex as HookIndex
from ._index import index_hooks as index_hooks
from ._index import load_hooks as load_hooks
from ._index import read_declarations as read_declarations
from ._model import DELIVERY_HEADERS as DELIVERY_HEADERS
from ._model import TRIGGER_SCOPE as TRIGGER_SCOPE
from ._model import ArgSource as ArgSource
from ._model import HmacAuth as HmacAuth
from ._model import Hook as Hook
from ._model import HookAuth as HookAuth
from ._model import SecretRef as SecretRef
from ._model import TokenAuth as TokenAuth
from ._parse import NAME_PATTERN as NAME_PATTERN
from ._parse import HookInvalid as HookInvalid
from ._parse import parse_hook as parse_hook
from ._request import REFUSALS as REFUSALS
from ._request import Inbound as Inbound
from ._request import Refusal as Refusal
from ._request import Rejected as Rejected
from ._secrets import read_secret as read_secret
from ._secrets import secret_exposed as secret_exposed
from ._secrets import secret_problem as secret_problem
from ._verify import check_peer as check_peer
from ._verify import delivery_of as delivery_of
from ._verify import signed_payload as signed_payload
from ._verify import verify_hmac as verify_hmac
from ._verify import verify_token as verify_token
