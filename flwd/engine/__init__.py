"""The actor tree: root supervisor, journal, event hub, runs supervisor, run actors."""

from ._client import Engine as Engine
from ._client import open_engine as open_engine
from ._decisions import journal_refusal_sync as journal_refusal_sync
from ._hub import EventHub as EventHub
from ._recovery import recover as recover
from ._recovery import recover_interrupted as recover_interrupted
from ._run import Cancel as Cancel
from ._state import RunState as RunState
from ._stream import stream_events as stream_events
