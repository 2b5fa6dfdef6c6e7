"""Notifications of run outcomes: the rules (which runs send what), the sinks (a signed
webhook, mail through SMTP, a command) and the notifier, a child of the engine's root.

The rules and the payload are sans-IO (``_rules``, ``_payload``); the sinks are thin
trio adapters (``_webhook``, ``_email``, ``_command``); ``_notifier`` is the actor.
docs/automation.md ("Notifications") is the user's side of it.
"""

from ._attempt import Attempt as Attempt
from ._notifier import DRAIN_TIMEOUT as DRAIN_TIMEOUT
from ._notifier import QUEUE as QUEUE
from ._notifier import SENDS as SENDS
from ._notifier import SINK_PENDING as SINK_PENDING
from ._notifier import Journal as Journal
from ._notifier import Notifier as Notifier
from ._notifier import SenderFactory as SenderFactory
from ._payload import SIGNATURE_HEADER as SIGNATURE_HEADER
from ._payload import TIMESTAMP_HEADER as TIMESTAMP_HEADER
from ._payload import Notification as Notification
from ._payload import RunLinks as RunLinks
from ._payload import email_text as email_text
from ._payload import notification as notification
from ._payload import public_url_valid as public_url_valid
from ._payload import run_summary as run_summary
from ._payload import signature as signature
from ._payload import verify_signature as verify_signature
from ._rules import Armed as Armed
from ._rules import Streaks as Streaks
from ._rules import arm as arm
from ._rules import delivery_id as delivery_id
from ._rules import finish_event as finish_event
from ._rules import history_depth as history_depth
from ._rules import streaks as streaks
from ._secrets import SecretUnavailable as SecretUnavailable
from ._secrets import read_credentials as read_credentials
from ._secrets import read_secret_file as read_secret_file
from ._sinks import Sender as Sender
from ._sinks import Sinks as Sinks
from ._sinks import open_sinks as open_sinks
from ._workspace import WorkspaceRules as WorkspaceRules
