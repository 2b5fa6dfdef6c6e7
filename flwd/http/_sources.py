"""Sources: list, read, add (or update), refresh and remove the job sources of the server."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, jsonify, request

from flwd.sources import Entry, parse_request, source_document

from ._request import json_body, page, sees_aliases
from ._source_models import SourceRequest
from ._state import current_state

blueprint = Blueprint("sources", __name__)


def source_json(entry: Entry) -> dict[str, Any]:
    return source_document(entry.source, entry.index,
                           show_aliases=sees_aliases(current_state().options.aliases_public))


# Registered before POST /sources: an OPTIONS /sources is routed to the first rule.
@blueprint.get("/sources")
async def list_sources() -> Response:
    """A page of sources (``X-Total-Count``: how many in all).

    Cancellation: nothing is left behind (here as in ``get_source``).
    """
    first, per_page = page(request.args)
    entries = current_state().engine.sources()
    response = jsonify([source_json(entry)
                        for entry in entries[(first - 1) * per_page: first * per_page]])
    response.headers["X-Total-Count"] = str(len(entries))
    return response


@blueprint.get("/sources/<source_name:name>")
async def get_source(name: str) -> Response:
    return jsonify(source_json(current_state().engine.source(name)))


@blueprint.post("/sources")
async def add_source() -> Response:
    """Register (or update) a source and wait for its checkout.

    Cancellation: once the sources actor has the request, the source is added
    (and checked out) all the same; only the answer is lost.
    """
    body, _ = await json_body(SourceRequest)
    spec = parse_request(body.root.model_dump(exclude_none=True))
    engine = current_state().engine
    source, created = await engine.add_source(spec)
    response = jsonify(source_json(engine.source(source.name)))
    response.status_code = 201 if created else 200
    response.headers["Location"] = f"/sources/{source.name}"
    return response


@blueprint.post("/sources/<source_name:name>:refresh")
async def refresh_source(name: str) -> Response:
    """Fetch the source again and pin its ref's current commit.

    Cancellation: as ``add_source``: the refresh goes on without the client.
    """
    engine = current_state().engine
    await engine.refresh_source(name)
    return jsonify(source_json(engine.source(name)))


@blueprint.delete("/sources/<source_name:name>")
async def delete_source(name: str) -> Response:
    """Remove the source (its jobs disappear).

    Cancellation: as ``add_source``: the removal goes on without the client.
    """
    await current_state().engine.remove_source(name)
    return Response("", status=204)
