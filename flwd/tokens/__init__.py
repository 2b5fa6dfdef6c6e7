"""API tokens: the tokens file (hashed tokens with scopes and an optional expiry) and its
live view.

The CLI changes the file (``flwd :tokens create|list|revoke``, :func:`create_token`,
:func:`revoke_token`); ``flwd :serve`` reads it through a :class:`TokenStore`, which
picks up every change on the next request. A token is never stored, only its SHA-256.
"""

from ._expiry import format_time as format_time
from ._expiry import parse_duration as parse_duration
from ._expiry import parse_expires as parse_expires
from ._file import MAX_FILE_BYTES as MAX_FILE_BYTES
from ._file import MintedToken as MintedToken
from ._file import TokensSnapshot as TokensSnapshot
from ._file import create_token as create_token
from ._file import load_tokens as load_tokens
from ._file import read_tokens as read_tokens
from ._file import revoke_token as revoke_token
from ._model import SCOPES as SCOPES
from ._model import TOKEN_PREFIX as TOKEN_PREFIX
from ._model import TokenEntry as TokenEntry
from ._model import check_scopes as check_scopes
from ._model import digest as digest
from ._store import TokenStore as TokenStore

#: The tokens file's name in the data dir (``--tokens FILE`` names another).
DEFAULT_FILE_NAME = "tokens.json"
