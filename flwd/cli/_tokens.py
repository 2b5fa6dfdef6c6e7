"""``flwd :tokens create|list|revoke``: the API tokens of the tokens file.

The file is ``DATA_DIR/tokens.json`` unless ``--tokens FILE`` names another — the
same flag, and the same default, as ``flwd :serve --tokens``. A server running on the
file picks up every change on its next request, so no restart is needed. Tokens are
local to the file: there is no remote mode (a token cannot mint tokens).

On a Core DB several servers share (``--db postgresql://…`` or ``FLWD_DB``), the tokens
are the Core DB's, unless ``--tokens FILE`` names a file: every server checks them
(``flwd.tokens.core_db``). ``:tokens import`` copies a tokens file's tokens there.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from cyclopts import App, Parameter

from flwd.errors import UsageError
from flwd.tokens import (
    DEFAULT_FILE_NAME,
    SCOPES,
    TokenEntry,
    create_token,
    format_time,
    parse_expires,
    read_tokens,
    revoke_token,
)

from ._context import CONTEXT

if TYPE_CHECKING:
    from flwd.store import Store
from ._render import table

tokens_app = App(
    name=":tokens",
    help="Manage API tokens: only a token's SHA-256 is stored, with its scopes and expiry. "
         "A running `flwd :serve` picks up changes on its next request.")

#: ``--file`` was ``:tokens create``'s flag before ``--tokens`` (documented then); it still
#: works, unlisted, so existing scripts keep running.
_OldFile = Annotated[str | None, Parameter(show=False)]


def tokens_file(tokens: str | None, old: str | None = None) -> Path:
    """The tokens file: ``--tokens FILE``, else ``DATA_DIR/tokens.json``."""
    if tokens is not None and old is not None:
        raise UsageError("give the tokens file once, with --tokens FILE")
    chosen = tokens if tokens is not None else old
    if chosen is not None:
        if not chosen.strip():
            raise UsageError("--tokens needs a file", hint="e.g. --tokens ~/.config/flwd/tokens.json")
        return Path(chosen).expanduser()
    return CONTEXT.settings(require_scripts=False).data_dir / DEFAULT_FILE_NAME


def _shared_store(tokens: str | None) -> Store | None:
    """The Core DB that keeps the tokens: a shared one (PostgreSQL) when no ``--tokens``
    file is named; None: the tokens file."""
    if tokens is not None:
        return None
    store = CONTEXT.settings(require_scripts=False).open_store()
    return store if store.clustered else None


@tokens_app.command(name="create")
def create_command(*, name: str, scope: Annotated[list[str], Parameter(negative=())],
                   expires: str | None = None, tokens: str | None = None,
                   file: _OldFile = None) -> int:
    """Mint a token; it is printed once, only its SHA-256 is stored.

    Parameters
    ----------
    name
        A unique name for the token (shown in logs and `:tokens list` instead of the token).
    scope
        A scope to grant (repeat the flag): jobs:read, jobs:write, runs:read, runs:write,
        events:read, sources:read, sources:write, metrics:read, ruley:read, ruley:write,
        hooks:trigger, or * for all.
    expires
        When the token stops working: a duration from now (30d, 12h, 90m, 1d12h) or a
        time with its zone (2027-01-01T00:00:00Z). Default: never.
    tokens
        Tokens file (default: DATA_DIR/tokens.json, the one `flwd :serve` reads).
    """
    now = time.time()
    expires_at = parse_expires(expires, now=now) if expires is not None else None
    until = f", expires {format_time(expires_at)}" if expires_at is not None else ""
    shared = _shared_store(tokens if tokens is not None else file)
    if shared is not None:
        from flwd.tokens.core_db import create_in

        minted = create_in(shared, name, scope, expires_at=expires_at, now=now)
        where = f"the Core DB {shared.location}"
    else:
        path = tokens_file(tokens, file)
        minted = create_token(path, name, scope, expires_at=expires_at, now=now)
        where = str(path)
    sys.stderr.write(f"token '{name}' added to {where}{until}; it is shown only now:\n")
    print(minted.token)
    return 0


def _scopes_cell(entry: TokenEntry) -> str:
    return "*" if entry.scopes >= set(SCOPES) else ",".join(sorted(entry.scopes))


@tokens_app.command(name="list")
def list_command(*, json: bool = False, tokens: str | None = None) -> int:
    """List the tokens: NAME SCOPES CREATED EXPIRES STATUS (never a token or its hash).

    Parameters
    ----------
    json
        Print [{name, scopes, created_at, expires_at, expired}] as JSON.
    tokens
        Tokens file (default: DATA_DIR/tokens.json, the one `flwd :serve` reads).
    """
    shared = _shared_store(tokens)
    if shared is not None:
        from flwd.tokens.core_db import entries_of

        entries: Sequence[TokenEntry] = entries_of(shared)
        where = f"the Core DB {shared.location}"
    else:
        path = tokens_file(tokens)
        entries = read_tokens(path).entries
        where = str(path)
    now = time.time()
    if json:
        print(_dumps([entry.to_json(now) for entry in entries]))
    elif not entries:
        print(f"(no tokens in {where})")
    else:
        print(table(["NAME", "SCOPES", "CREATED", "EXPIRES", "STATUS"], [
            [entry.name, _scopes_cell(entry), entry.created_at or "-",
             format_time(entry.expires_at) if entry.expires_at is not None else "never",
             "expired" if entry.expired(now) else "active"]
            for entry in entries]))
    return 0


@tokens_app.command(name="revoke")
def revoke_command(name: str, /, *, tokens: str | None = None) -> int:
    """Remove a token: a running `flwd :serve` refuses it from its next request.

    Parameters
    ----------
    name
        The token's name (see `flwd :tokens list`).
    tokens
        Tokens file (default: DATA_DIR/tokens.json, the one `flwd :serve` reads).
    """
    shared = _shared_store(tokens)
    if shared is not None:
        from flwd.tokens.core_db import REFRESH, revoke_in

        revoke_in(shared, name)
        print(f"token '{name}' revoked (removed from the Core DB {shared.location}; "
              f"every server refuses it within {REFRESH:g} s)")
        return 0
    path = tokens_file(tokens)
    revoke_token(path, name)
    print(f"token '{name}' revoked (removed from {path})")
    return 0


@tokens_app.command(name="import")
def import_command(*, tokens: str | None = None) -> int:
    """Copy the tokens of a tokens file into the shared Core DB (--db or FLWD_DB): their
    digests, scopes and expiries; a name already there is kept as it is.

    Parameters
    ----------
    tokens
        Tokens file to import (default: DATA_DIR/tokens.json).
    """
    path = tokens_file(tokens)
    store = CONTEXT.settings(require_scripts=False).open_store()
    if not store.clustered:
        raise UsageError(f"the Core DB {store.location} is the data dir's: its server "
                         "reads the tokens file itself",
                         hint="name a shared Core DB: --db postgresql://USER@HOST/DATABASE")
    from flwd.tokens.core_db import import_file

    done = import_file(store, path)
    print(f"imported {len(done.added)} token(s) from {path} into the Core DB "
          f"{store.location}" + (f"; kept {len(done.kept)} already there: "
                                 f"{', '.join(done.kept)}" if done.kept else ""))
    return 0


def _dumps(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)
