"""The sinks a notifier delivers to: the :class:`Sender` port and its real implementation.

Each sink's machinery (httpx and its TLS context, smtplib) is imported and set up at its
first delivery: every CLI run starts a notifier, and most runs notify nobody.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import trio

from flwd.jobs import CommandSink, EmailSink, NotifyRule, WebhookSink

from ._attempt import Attempt
from ._command import run_command
from ._payload import Notification

if TYPE_CHECKING:
    import httpx

#: SMTP conversations at once (each holds a worker thread).
MAIL_THREADS = 4


class Sender(Protocol):
    """Makes one attempt to deliver a notification to a rule's sink."""

    async def send(self, rule: NotifyRule, note: Notification) -> Attempt:
        """One attempt, bounded by the sink's ``timeout``; never raises for what the
        sink does (a refusal, a timeout, a missing secret are :class:`Attempt`\\ s).

        Cancellation: the attempt is abandoned; nothing of it is left running.
        """


@dataclass(slots=True)
class Sinks:
    """The real sinks: webhooks (one HTTP client, its connections pooled), mail (SMTP in
    worker threads), commands (processes)."""

    workspace: Path
    environ: Mapping[str, str]
    mail_threads: trio.CapacityLimiter
    #: The webhooks' client, made at the first webhook delivery (closed by open_sinks).
    client: httpx.AsyncClient | None = field(default=None)

    def webhook_client(self) -> httpx.AsyncClient:
        """The webhooks' HTTP client (made now if this is the first delivery)."""
        if self.client is None:
            import httpx  # start-up: only when a webhook is delivered

            self.client = httpx.AsyncClient(follow_redirects=False)
        return self.client

    async def send(self, rule: NotifyRule, note: Notification) -> Attempt:
        """See :meth:`Sender.send`."""
        sink = rule.sink
        if isinstance(sink, WebhookSink):
            from ._webhook import post_webhook  # start-up: see the module docstring

            return await post_webhook(self.webhook_client(), sink, note, environ=self.environ,
                                      workspace=self.workspace)
        if isinstance(sink, EmailSink):
            from ._email import post_mail  # start-up: see the module docstring

            return await post_mail(sink, note, workspace=self.workspace,
                                   limiter=self.mail_threads)
        assert isinstance(sink, CommandSink)
        return await run_command(sink, note, workspace=self.workspace, environ=self.environ)


@asynccontextmanager
async def open_sinks(workspace: Path, environ: Mapping[str, str] | None = None
                     ) -> AsyncIterator[Sinks]:
    """The real sinks for the notifications of ``workspace``'s runs (commands start
    there; relative secret files are there). ``environ``: where ``secret_env`` and
    ``url_env`` are read (the process's environment).

    The HTTP client follows the environment's proxy settings (``HTTPS_PROXY``,
    ``NO_PROXY``…) and CA bundle (``SSL_CERT_FILE``), as curl does; it never follows
    a redirect.

    Cancellation: the client's connections are closed on the way out.
    """
    sinks = Sinks(workspace, os.environ if environ is None else environ,
                  trio.CapacityLimiter(MAIL_THREADS))
    try:
        yield sinks
    finally:
        if sinks.client is not None:
            with trio.CancelScope(shield=True):
                await sinks.client.aclose()
