"""Core DB (SQLite, WAL): schema, journal writer thread, readers, recovery."""

from ._db import connect as connect
from ._db import db_path as db_path
from ._idempotency import body_digest as body_digest
from ._idempotency import install_key as install_key
from ._journal import GroupResult as GroupResult
from ._journal import JournalItem as JournalItem
from ._journal import append_batch as append_batch
from ._journal import append_groups as append_groups
from ._read import count_runs as count_runs
from ._read import event_bounds as event_bounds
from ._read import find_idempotent as find_idempotent
from ._read import get_run as get_run
from ._read import list_runs as list_runs
from ._read import open_reader as open_reader
from ._read import read_events as read_events
from ._read import unfinished_runs as unfinished_runs
from ._recovery import owner_identity as owner_identity
from ._recovery import recover_interrupted as recover_interrupted
from ._retention import GcResult as GcResult
from ._retention import RetentionPolicy as RetentionPolicy
from ._retention import collect as collect
from ._retention import evicted_through as evicted_through
from ._retention import storage_usage as storage_usage
from ._retention import was_evicted as was_evicted
from ._writer import JournalWriter as JournalWriter
