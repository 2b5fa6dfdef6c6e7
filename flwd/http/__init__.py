"""Serve mode: the HTTP API (REST, SSE, WebSocket), auth scopes, problems, metrics."""

from ._app import create_app as create_app
from ._auth import SCOPES as SCOPES
from ._auth import Authenticator as Authenticator
from ._command_line import Answered as Answered
from ._command_line import CommandLine as CommandLine
from ._command_line import CommandLines as CommandLines
from ._command_line import Declined as Declined
from ._command_line import Ready as Ready
from ._command_line import Replay as Replay
from ._extensions import KNOWN_EXTENSIONS as KNOWN_EXTENSIONS
from ._extensions import parse_extensions as parse_extensions
from ._openapi import openapi_document as openapi_document
from ._serve import ServeConfig as ServeConfig
from ._serve import serve as serve
from ._state import ServeOptions as ServeOptions
from ._supervisor import serve_any as serve_any
from ._supervisor import serve_workers as serve_workers
