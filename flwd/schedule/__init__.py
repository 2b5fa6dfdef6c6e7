"""Schedules: when a job runs by itself (sans-IO).

A job's ``config.yaml`` lists its schedules (``schedule:``, validated by
:mod:`flwd.jobs`); each becomes a :class:`Schedule`: a cron expression (or ``@every``,
``at:``, ``@reboot``) read on an IANA zone's wall clock, with Debian cron's rules at
daylight-saving changes (:mod:`._when`). :func:`due` decides, from a schedule's
watermark and the wall clock, which fires to start and which to skip (missed fires,
the catch-up window); :class:`ScheduleBook` holds a catalog's schedules by unique
name. The scheduler actor (:mod:`flwd.engine`) does the waiting and the starting.

Nothing here imports trio, reads a clock or touches the Core DB.
"""

from ._book import ScheduleBook as ScheduleBook
from ._book import ScheduleIssue as ScheduleIssue
from ._due import MAX_CATCHUP as MAX_CATCHUP
from ._due import Due as Due
from ._due import Fire as Fire
from ._due import Skip as Skip
from ._due import SkipReason as SkipReason
from ._due import due as due
from ._due import skip_through as skip_through
from ._spec import DEFAULT_CATCHUP_WINDOW as DEFAULT_CATCHUP_WINDOW
from ._spec import MISFIRE_MODES as MISFIRE_MODES
from ._spec import OVERLAP_MODES as OVERLAP_MODES
from ._spec import Misfire as Misfire
from ._spec import Overlap as Overlap
from ._spec import Schedule as Schedule
from ._spec import fire_data as fire_data
from ._spec import fire_key as fire_key
from ._spec import format_fire as format_fire
from ._spec import jitter_for as jitter_for
from ._spec import manual_key as manual_key
from ._view import NEXT_FIRES as NEXT_FIRES
from ._view import next_fire as next_fire
from ._view import schedule_view as schedule_view
from ._view import status_of as status_of
from ._when import At as At
from ._when import Cron as Cron
from ._when import Every as Every
from ._when import Reboot as Reboot
from ._when import When as When
from ._when import parse_at as parse_at
from ._when import parse_when as parse_when
from ._zone import resolve_zone as resolve_zone
from ._zone import system_zone as system_zone
