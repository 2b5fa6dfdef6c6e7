"""Inbound webhooks: ``POST /hooks/<name>`` and ``GET /hooks``.

``POST /hooks/<name>`` needs no token of the app: each hook says how a request
proves itself (``flwd.hooks``). In order: the peer's address, the body (bounded in
size and in time), the delivery id, the signature, token or bearer, then the
delivery is claimed (a replay starts nothing), the arguments mapped and the run
started through ``Engine.submit`` with the delivery as its trigger (one run per
delivery, even for two racing requests). Every refusal is counted
(``flwd_hook_requests_total``) and journaled (``hook.rejected``, budgeted); every
accepted delivery is journaled (``hook.received``, with its run's id). Neither
ever holds the body, a signature or a secret.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import uuid
from typing import Any

import trio
from quart import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge, RequestTimeout
from werkzeug.routing import BaseConverter

from flwd.errors import ArgsInvalid, FlwdError, TriggerAlreadyFired
from flwd.events import RUN_FINISH, EventRecord, RunRow, Trigger, now
from flwd.hooks import (
    NAME_PATTERN,
    TRIGGER_SCOPE,
    Hook,
    Inbound,
    Rejected,
    check_peer,
    delivery_of,
    map_args,
    read_secret,
    verify_hmac,
    verify_token,
)
from flwd.observe import UNKNOWN_HOOK
from flwd.plan import PlanRequest

from ._auth import Refusal
from ._problems import HttpProblem
from ._state import AppState, current_state

blueprint = Blueprint("hooks", __name__)
_log = logging.getLogger("flwd.hooks")

#: Seconds a hook's request body may take to arrive: a sender posts it at once, and a
#: body trickling in holds a connection for nothing.
BODY_TIMEOUT = 10.0
#: The longest ``?wait=SECONDS``.
MAX_WAIT = 300.0
#: Deliveries a hook remembers at most (its oldest are forgotten first).
KEEP_DELIVERIES = 10_000
#: A claimed delivery with no run after this many seconds was lost (the server
#: stopped between claim and start): a redelivery may take it over.
STALE_CLAIM = 120.0


class HookName(BaseConverter):
    regex = NAME_PATTERN


async def _hook(state: AppState, name: str) -> Hook:
    index = await state.hooks.index(state.engine, dev=state.options.dev)
    hook = index.get(name)
    if hook is None:
        # Never the name asked as a label: a client would make a series per name.
        state.engine.observer.hook_request(UNKNOWN_HOOK, "unknown")
        raise HttpProblem(404, "hook not found", f"no hook named {name} on this server "
                          "(GET /hooks lists them)", code="hook.not.found")
    return hook


def _wait() -> float:
    text = request.args.get("wait")
    if text is None:
        return 0.0
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= MAX_WAIT:
        raise Rejected("request", f"wait must be a number of seconds from 0 to {MAX_WAIT:g}")
    return seconds


async def _inbound() -> Inbound:
    """The request with its body, read within :data:`BODY_TIMEOUT` and the size limit."""
    request.body_timeout = BODY_TIMEOUT  # type: ignore[assignment]  # Quart's is an int
    try:
        body = await request.get_data(cache=False, as_text=False)
    except RequestEntityTooLarge:
        raise Rejected("too_large", "request bodies are limited to "
                       f"{current_app.config['MAX_CONTENT_LENGTH']} bytes") from None
    except RequestTimeout:
        raise Rejected("timeout", f"the body did not arrive within {BODY_TIMEOUT:g} s") from None
    g.body_read = True  # the connection may be kept alive (see _app's after_request)
    return Inbound.build(request.headers.items(), request.args.items(multi=True),
                         body if isinstance(body, bytes) else body.encode(), request.remote_addr)


async def _authenticate(state: AppState, hook: Hook, inbound: Inbound,
                        delivery: str | None) -> None:
    auth = hook.auth
    if auth.bearer:
        principal = state.authenticator.authenticate(request.headers.get("Authorization"))
        if isinstance(principal, Refusal):
            raise Rejected("bearer", principal.detail)
        if TRIGGER_SCOPE not in principal.scopes:
            raise Rejected("scope", f"missing required scope: {TRIGGER_SCOPE}")
    if auth.token is not None:
        secret = await trio.to_thread.run_sync(read_secret, auth.token.secret)
        verify_token(auth.token, secret, inbound)
    if auth.hmac is not None:
        secret = await trio.to_thread.run_sync(read_secret, auth.hmac.secret)
        # The wall clock: a signed timestamp is the sender's wall clock.
        verify_hmac(auth.hmac, secret, inbound, delivery, time.time())


async def _start(state: AppState, hook: Hook, delivery: str | None, args: dict[str, Any]
                 ) -> RunRow:
    """Claim the delivery and start its run (settling the claim either way)."""
    engine = state.engine
    if delivery is not None:
        claim = await engine.claim_delivery(hook.name, delivery, window=hook.replay_window,
                                            keep=KEEP_DELIVERIES, stale=STALE_CLAIM)
        if not claim.claimed:
            raise Rejected("replay", f"delivery {delivery} was received before",
                           run_id=claim.run_id)
    key = delivery if delivery is not None else f"~{uuid.uuid4().hex}"
    trigger = Trigger(f"hook:{hook.name}:{key}",
                      {"kind": "hook", "name": hook.name, "delivery": delivery})
    run: RunRow | None = None
    try:
        run, _ = await engine.submit(PlanRequest(hook.job, args=args), trigger=trigger)
    except TriggerAlreadyFired:
        raise Rejected("replay", f"delivery {delivery} already started a run") from None
    finally:
        if delivery is not None:
            with trio.CancelScope(shield=True):
                await engine.settle_delivery(hook.name, delivery, run.id if run else None)
    assert run is not None
    return run


async def _refused(state: AppState, hook: Hook, reason: str, detail: str,
                   delivery: str | None, **more: Any) -> None:
    """Count a refusal, and journal it within the hook's budget."""
    state.engine.observer.hook_request(hook.name, reason)
    suppressed = state.hooks.budget.take(hook.name, trio.current_time())
    if reason == "unavailable":
        _log.error("hook unavailable", extra={"fields": {"hook": hook.name, "problem": detail}})
    if suppressed is None:
        return
    data = {"hook": hook.name, "reason": reason, "detail": detail, "delivery": delivery,
            "peer": request.remote_addr, **more}
    if suppressed:
        data["suppressed"] = suppressed
    await _journal(state, hook, "hook.rejected", data)


async def _journal(state: AppState, hook: Hook, type_: str, data: dict[str, Any]) -> None:
    # An event of no run (``run_id`` ""): even hook.received, whose run's id is in its
    # data — the run's own stream ends at its run.finish, which may come first.
    await state.engine.journal_events([EventRecord(run_id="", job_id=hook.job, type=type_,
                                                   ts=now(), data=data)])


def _problem(error: Rejected) -> HttpProblem:
    refusal = error.refusal
    headers = {}
    extensions: dict[str, Any] = {}
    if refusal.status == 401:
        headers["WWW-Authenticate"] = ('Bearer realm="flwd"' if error.reason == "bearer"
                                       else 'Signature realm="flwd-hooks"')
    if error.reason == "scope":
        extensions["missing_scopes"] = [TRIGGER_SCOPE]
    if error.run_id:
        extensions["run_id"] = error.run_id
    return HttpProblem(refusal.status, refusal.title, error.public_detail, code=refusal.code,
                       headers=headers, **extensions)


@blueprint.post("/hooks/<hookname:name>")
async def trigger_hook(name: str) -> Response:
    """Start the hook's job for an authenticated delivery: 202 ``{run_id, events_url}``,
    or with ``?wait=SECONDS`` 200 with the run's outcome if it ends in time.

    Cancellation: once the engine has the request, the run starts all the same (its
    delivery is recorded); only the answer is lost.
    """
    state = current_state()
    hook = await _hook(state, name)
    delivery: str | None = None
    try:
        wait = _wait()
        check_peer(hook.auth.allow_ips, request.remote_addr)
        inbound = await _inbound()
        delivery = delivery_of(hook, inbound)
        await _authenticate(state, hook, inbound, delivery)
        run = await _start(state, hook, delivery, map_args(hook, inbound))
    except Rejected as error:
        await _refused(state, hook, error.reason, error.detail, delivery)
        raise _problem(error) from None
    except ArgsInvalid as error:
        # The sender gets every message (its own values); the journal only the names.
        await _refused(state, hook, "args", "argument validation failed", delivery,
                       args=[item["arg"] for item in error.errors])
        raise
    except FlwdError as error:
        await _refused(state, hook, "refused", error.problem.code, delivery)
        raise
    state.engine.observer.hook_request(hook.name, "accepted")
    await _journal(state, hook, "hook.received", {
        "hook": hook.name, "delivery": delivery, "run_id": run.id, "auth": hook.auth.kinds,
        "peer": request.remote_addr})
    return await _answer(state, run, wait)


async def _answer(state: AppState, run: RunRow, wait: float) -> Response:
    document: dict[str, Any] = {"run_id": run.id, "events_url": f"/runs/{run.id}/events",
                                "run_url": f"/runs/{run.id}", "status": run.status}
    finished = await _finished(state, run.id, wait) if wait > 0 else None
    if finished is not None:
        document["status"] = finished.status
        if finished.exit_code is not None:
            document["exit_code"] = finished.exit_code
    response = jsonify(document)
    response.status_code = 200 if finished is not None else 202
    response.headers["Location"] = f"/runs/{run.id}"
    return response


async def _finished(state: AppState, run_id: str, wait: float) -> RunRow | None:
    """The run once it has ended, if it ends within ``wait`` seconds (None: not yet,
    or every event stream slot is taken: a wait holds one, as a stream does)."""
    slot = state.streams.try_take()
    if slot is None:
        return None
    try:
        with trio.move_on_after(wait):
            async with contextlib.aclosing(state.engine.events(run_id)) as batches:
                async for batch in batches:
                    if any(record.type == RUN_FINISH for record in batch):
                        return await state.engine.get_run(run_id)
        return None
    finally:
        slot.release()


@blueprint.before_app_serving
async def _load_hooks() -> None:
    """Read the hooks once before serving: a declaration that is not served is in the
    server's log from the start, not at its first request.

    Cancellation: the server is not serving yet; nothing is left behind.
    """
    state = current_state()
    try:
        await state.hooks.index(state.engine, dev=state.options.dev)
    except FlwdError as error:  # the first request reports it (as GET /jobs does)
        _log.error("hooks not loaded", extra={"fields": {"problem": error.one_line()}})


@blueprint.get("/hooks")
async def list_hooks() -> Response:
    """The hooks served (no secret, nor where one is kept) and the declarations that are
    not, with why.

    Cancellation: nothing is left behind.
    """
    state = current_state()
    index = await state.hooks.index(state.engine, dev=state.options.dev)
    return jsonify(index.to_json())
