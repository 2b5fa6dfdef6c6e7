"""The actor tree: root supervisor, journal, event hub, runs supervisor, run actors, and
the scheduler."""

from ._client import Engine as Engine
from ._client import open_engine as open_engine
from ._cluster import ClusterSettings as ClusterSettings
from ._cluster import cluster_settings as cluster_settings
from ._decisions import journal_refusal_sync as journal_refusal_sync
from ._hub import EventHub as EventHub
from ._recovery import recover as recover
from ._recovery import recover_interrupted as recover_interrupted
from ._run import Cancel as Cancel
from ._scheduler import QUEUE_LIMIT as QUEUE_LIMIT
from ._scheduler import RECHECK as RECHECK
from ._scheduler import FireNow as FireNow
from ._scheduler import Poke as Poke
from ._scheduler import Scheduler as Scheduler
from ._scheduler import SchedulerHost as SchedulerHost
from ._scheduler import SystemClock as SystemClock
from ._scheduler import WallClock as WallClock
from ._state import RunState as RunState
from ._stream import stream_events as stream_events
