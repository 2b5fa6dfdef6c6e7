"""The web UI: ``GET /`` (the shell) and ``GET /ui/<path>`` (its modules, styles, images).

Open routes (no token): the files hold no data, every page asks the API for
it with the caller's credentials. ``flwd :serve --ui=false`` leaves this
blueprint out (both routes are then 404).

Every answer of the blueprint, its 404s and 304s included, carries the
security headers: a Content-Security-Policy that allows only this origin's
scripts and styles (no inline ones, no other origin, no framing), no
referrer, no MIME sniffing.
"""

from __future__ import annotations

import trio
from quart import Blueprint, Response, request

from flwd import ui

from ._params import quote
from ._problems import not_found

blueprint = Blueprint("ui", __name__)

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}


@blueprint.after_request
async def _secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


@blueprint.get("/")
async def index() -> Response:
    """The UI's shell.

    Cancellation: nothing is left behind (here as in ``asset``).
    """
    return _answer(await trio.to_thread.run_sync(ui.index), ui.INDEX, NO_CACHE)


#: The rule the UI's files are logged and counted under (the fast path's too).
ASSET_ROUTE = "/ui/<path:asset_path>"


@blueprint.get(ASSET_ROUTE)
async def asset(asset_path: str) -> Response:
    found, path, current = await find_asset(asset_path)
    # A name of the current release never changes: kept for good. A file asked under an
    # older release (a page loaded before an upgrade) is today's, revalidated each time.
    return _answer(found, path, IMMUTABLE if current else NO_CACHE)


async def find_asset(asset_path: str) -> tuple[ui.Asset | None, str, bool]:
    """(the file of ``/ui/<asset_path>``, its path within the UI, whether it is named
    under the current release). Both ``asset`` and the fast path (``_fast_ui``) ask.

    Cancellation: nothing is left behind.
    """
    wanted, path = ui.split_release(asset_path)

    def find() -> tuple[ui.Asset | None, bool]:
        if wanted is None:
            return ui.asset(path), False
        # The release before and after the read: a file edited meanwhile must not be
        # kept for good under a release it is not part of.
        before = ui.release()
        found = ui.asset(path)
        return found, wanted == before == ui.release()

    found, current = await trio.to_thread.run_sync(find)
    return found, path, current


#: Kept, but revalidated on every use (an upgraded server's files show at once; an
#: unchanged one costs a 304).
NO_CACHE = "no-cache"
#: A file under its release's name (``/ui/~<release>/…``): the same bytes for ever.
IMMUTABLE = "public, max-age=31536000, immutable"


def _answer(found: ui.Asset | None, path: str, cache: str) -> Response:
    if found is None:
        raise not_found("UI file", f"the web UI has no file {quote(path)}", "ui.file.not.found")
    headers = {"ETag": found.etag, "Cache-Control": cache}
    if ui.etag_matches(request.headers.get("If-None-Match", ""), found.etag):
        return Response(b"", status=304, headers=headers)
    return Response(found.body, status=200, content_type=found.content_type, headers=headers)
