"""Rule-Y KV: the small key/value store jobs and triggers share between runs.

Which namespaces may be used and how many bytes each may hold
(:class:`KvNamespaces`, ``:serve --kv-namespace``), the wire forms of keys,
values and cursors (base64, RFC 3339 times), and :class:`KvSpace`, the one
place where a request meets the Core DB (the engine façade and the CLI's local
``:kv`` verb both go through it). Sans-IO but for ``KvSpace``, which blocks on
the Store.
"""

from ._namespaces import DEFAULT_LIMIT as DEFAULT_LIMIT
from ._namespaces import DEFAULT_NAMESPACES as DEFAULT_NAMESPACES
from ._namespaces import ENV_VAR as ENV_VAR
from ._namespaces import KvNamespaces as KvNamespaces
from ._space import KvPage as KvPage
from ._space import KvSpace as KvSpace
from ._wire import MAX_LIMIT as MAX_LIMIT
from ._wire import decode_cursor as decode_cursor
from ._wire import decode_value as decode_value
from ._wire import encode as encode
from ._wire import format_timestamp as format_timestamp
from ._wire import item_document as item_document
from ._wire import key_text as key_text
from ._wire import parse_limit as parse_limit
