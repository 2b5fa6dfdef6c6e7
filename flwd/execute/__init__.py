"""Executors: process trees with the TERM → grace → KILL ladder (containers come later)."""

from ._lines import LineSplitter as LineSplitter
from ._process import GroupTerminator as GroupTerminator
from ._process import ProcessSpec as ProcessSpec
from ._process import run_process_tree as run_process_tree
from ._profile import profile_levels as profile_levels
from ._profile import render_profile as render_profile
