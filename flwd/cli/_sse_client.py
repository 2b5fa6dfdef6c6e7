"""Server-Sent Events decoding for the remote CLI: :mod:`flwd.sse`'s (the thin client's too)."""

from flwd.sse import MAX_LINE as MAX_LINE
from flwd.sse import SSEDecoder as SSEDecoder
from flwd.sse import SSEFrame as SSEFrame
