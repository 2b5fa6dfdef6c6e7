"""The sinks a notifier delivers to: the :class:`Sender` port and its real implementation."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
import trio

from flwd.jobs import CommandSink, EmailSink, NotifyRule, WebhookSink

from ._attempt import Attempt
from ._command import run_command
from ._email import post_mail
from ._payload import Notification
from ._webhook import post_webhook

#: SMTP conversations at once (each holds a worker thread).
MAIL_THREADS = 4


class Sender(Protocol):
    """Makes one attempt to deliver a notification to a rule's sink."""

    async def send(self, rule: NotifyRule, note: Notification) -> Attempt:
        """One attempt, bounded by the sink's ``timeout``; never raises for what the
        sink does (a refusal, a timeout, a missing secret are :class:`Attempt`\\ s).

        Cancellation: the attempt is abandoned; nothing of it is left running.
        """


@dataclass(frozen=True, slots=True)
class Sinks:
    """The real sinks: webhooks (one HTTP client, its connections pooled), mail (SMTP in
    worker threads), commands (processes)."""

    client: httpx.AsyncClient
    workspace: Path
    environ: Mapping[str, str]
    mail_threads: trio.CapacityLimiter

    async def send(self, rule: NotifyRule, note: Notification) -> Attempt:
        """See :meth:`Sender.send`."""
        sink = rule.sink
        if isinstance(sink, WebhookSink):
            return await post_webhook(self.client, sink, note, environ=self.environ,
                                      workspace=self.workspace)
        if isinstance(sink, EmailSink):
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
    async with httpx.AsyncClient(follow_redirects=False) as client:
        yield Sinks(client, workspace, os.environ if environ is None else environ,
                    trio.CapacityLimiter(MAIL_THREADS))
