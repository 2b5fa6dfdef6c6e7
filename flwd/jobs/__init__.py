"""Jobs: the ``config.d/config.yaml`` schema, discovery under a scripts root, and
job arguments (CLI flags / JSON → a validated, redaction-aware binding).

Everything here is sans-IO except :func:`discover`, which reads the config files
and lists job directories. Nothing imports trio or any async library.
"""

from ._aliases import ALIASES_FILE as ALIASES_FILE
from ._aliases import Alias as Alias
from ._aliases import AliasIndex as AliasIndex
from ._aliases import discovery_problems as discovery_problems
from ._aliases import index_aliases as index_aliases
from ._aliases import load_aliases as load_aliases
from ._aliases import read_alias_entries as read_alias_entries
from ._argspec import PATH_FORMATS as PATH_FORMATS
from ._argspec import RESERVED_NAMES as RESERVED_NAMES
from ._argspec import SECRET_MARK as SECRET_MARK
from ._argspec import Arg as Arg
from ._argspec import ArgType as ArgType
from ._argspec import ItemType as ItemType
from ._argspec import plain as plain
from ._bind import Binding as Binding
from ._bind import bind_cli as bind_cli
from ._bind import bind_json as bind_json
from ._bind import flag_help as flag_help
from ._cli_tokens import JobFlags as JobFlags
from ._cli_tokens import SecretSource as SecretSource
from ._cli_tokens import bind_cli_tokens as bind_cli_tokens
from ._cli_tokens import bind_job_flags as bind_job_flags
from ._cli_tokens import parse_cli_tokens as parse_cli_tokens
from ._cli_tokens import parse_job_flags as parse_job_flags
from ._config import LABEL_RE as LABEL_RE
from ._config import ContainerConfig as ContainerConfig
from ._config import ContainerResources as ContainerResources
from ._config import ErrorHandling as ErrorHandling
from ._config import JobConfig as JobConfig
from ._config import JobMeta as JobMeta
from ._config import ParsedConfig as ParsedConfig
from ._config import Step as Step
from ._config import parse_config as parse_config
from ._config import parse_duration as parse_duration
from ._discovery import CONFIG_DIR as CONFIG_DIR
from ._discovery import CONFIG_FILE as CONFIG_FILE
from ._discovery import SKIPPED_DIRS as SKIPPED_DIRS
from ._discovery import Catalog as Catalog
from ._discovery import DiscoveryIssue as DiscoveryIssue
from ._discovery import DuplicateId as DuplicateId
from ._discovery import Job as Job
from ._discovery import discover as discover
from ._empty import NOTHING_TO_RUN as NOTHING_TO_RUN
from ._notify import NOTIFY_EVENTS as NOTIFY_EVENTS
from ._notify import RUNNING_LONG as RUNNING_LONG
from ._notify import CommandSink as CommandSink
from ._notify import EmailSink as EmailSink
from ._notify import NotifyRule as NotifyRule
from ._notify import WebhookSink as WebhookSink
from ._paths import check_paths as check_paths
from ._paths import path_problems as path_problems
from ._schedule import ScheduleEntry as ScheduleEntry
from ._suggest import close_matches as close_matches
from ._suggest import quoted_choice as quoted_choice
from ._text import printable as printable
from ._text import text_problem as text_problem
from ._timetable import job_schedules as job_schedules
from ._timetable import schedule_book as schedule_book
from ._workspace_notify import NotifyRead as NotifyRead
from ._workspace_notify import file_key as file_key
from ._workspace_notify import know_workspace_notify as know_workspace_notify
from ._workspace_notify import load_workspace_notify as load_workspace_notify
from ._workspace_notify import read_workspace_notify as read_workspace_notify
from ._yaml import CONFIG_LIMITS as CONFIG_LIMITS
from ._yaml import YamlLimits as YamlLimits
from ._yaml import YamlRefused as YamlRefused
from ._yaml import clip as clip
from ._yaml import load_yaml as load_yaml
from ._yaml import read_yaml_file as read_yaml_file
