"""Shell completion: the ``__complete`` protocol, its job index cache, and the
``flwd completion SHELL`` scripts that call it.

Importing this package is part of the completion fast path: it must stay free of
trio, pydantic, yaml, cyclopts and httpx (and of ``flwd.cli``). The index builder
(:mod:`._build`) and the shell scripts (:mod:`._scripts`) are imported only when
needed.
"""

from ._cache import cache_path as cache_path
from ._cache import is_fresh as is_fresh
from ._cache import save as save
from ._cache import stamp as stamp
from ._main import load_index as load_index
from ._main import run as run
from ._protocol import Candidate as Candidate
from ._protocol import encode as encode
from ._resolve import complete as complete
from ._scripts import SHELLS as SHELLS
from ._scripts import UnknownShell as UnknownShell
from ._scripts import completion_script as completion_script
