"""Executors: contained host process trees with the TERM → grace → KILL ladder."""

from flwd._keeper_boot import prelaunch_keeper as prelaunch_keeper

from ._environ import inherited_environment as inherited_environment
from ._lines import LineSplitter as LineSplitter
from ._owners import owner_identity as owner_identity
from ._owners import signal_owner as signal_owner
from ._process import GroupTerminator as GroupTerminator
from ._process import ProcessSpec as ProcessSpec
from ._process import run_process_tree as run_process_tree
from ._procfs import boot_id as boot_id
from ._procfs import process_alive as process_alive
from ._procfs import process_start_time as process_start_time
from ._profile import profile_levels as profile_levels
from ._profile import render_profile as render_profile
from ._pump import OutputSink as OutputSink
from ._pump import pump_lines as pump_lines
from ._recover import kill_run_processes as kill_run_processes
from ._secrets import remove_secret_files as remove_secret_files
from ._secrets import runs_with_runtime_secrets as runs_with_runtime_secrets
from ._secrets import secrets_dir as secrets_dir
from ._secrets import write_secret_files as write_secret_files
from ._start import StepError as StepError
