"""The actor tree: root supervisor, journal, event hub, runs supervisor, run actors."""

from ._decisions import journal_refusal_sync as journal_refusal_sync
from ._hub import EventHub as EventHub
from ._recovery import recover as recover
from ._recovery import recover_interrupted as recover_interrupted
from ._root import Engine as Engine
from ._root import open_engine as open_engine
from ._run import Cancel as Cancel
from ._state import RunState as RunState
from ._stream import stream_events as stream_events
