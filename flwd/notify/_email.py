"""The email sink: a plain-text mail through SMTP (stdlib ``smtplib`` in a worker thread).

STARTTLS by default, with the system's CAs (or the sink's ``ca_file``) and host name
checking: credentials are only ever sent over it (the config refuses them without).
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from functools import partial
from pathlib import Path

import trio

from flwd.jobs import EmailSink

from ._attempt import Attempt, bounded
from ._payload import Notification, email_text
from ._secrets import SecretUnavailable, read_credentials, secret_path


def _message(sink: EmailSink, note: Notification) -> EmailMessage:
    subject, text = email_text(note)
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sink.sender
    message["To"] = ", ".join(sink.to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="flwd.invalid")
    message["X-Flwd-Event"] = note.event
    message["X-Flwd-Delivery"] = note.delivery
    message.set_content(text)
    return message


def send_mail(sink: EmailSink, note: Notification, workspace: Path) -> Attempt:
    """One SMTP conversation (blocking: run it in a worker thread). 4xx replies and
    connection failures are worth another attempt; 5xx replies and TLS failures are not."""
    password = ""
    try:
        credentials = (read_credentials(sink.credentials_file, workspace)
                       if sink.credentials_file is not None else None)
        context = ssl.create_default_context(
            cafile=None if sink.ca_file is None else secret_path(sink.ca_file, workspace))
    except SecretUnavailable as exc:
        return Attempt(False, error=str(exc))
    except (OSError, ssl.SSLError) as exc:
        return Attempt(False, error=bounded(f"cannot load ca_file: {exc}"))
    if credentials is not None:
        password = credentials[1]
    try:
        with smtplib.SMTP(sink.smtp_host, sink.port, timeout=sink.timeout) as smtp:
            smtp.ehlo()
            if sink.starttls:
                smtp.starttls(context=context)
                smtp.ehlo()
            if credentials is not None:
                smtp.login(*credentials)
            smtp.send_message(_message(sink, note))
    except smtplib.SMTPResponseException as exc:
        detail = exc.smtp_error.decode("utf-8", "replace") if isinstance(
            exc.smtp_error, bytes) else str(exc.smtp_error)
        return Attempt(False, status=exc.smtp_code,
                       error=bounded(f"SMTP {exc.smtp_code} {detail}", password),
                       retry=400 <= exc.smtp_code < 500)
    except smtplib.SMTPRecipientsRefused as exc:
        return Attempt(False, error=bounded(f"recipients refused: {', '.join(exc.recipients)}"))
    except smtplib.SMTPNotSupportedError as exc:
        return Attempt(False, error=bounded(f"the server does not support it: {exc}"))
    except ssl.SSLError as exc:
        return Attempt(False, error=bounded(f"TLS: {exc}", password))
    except (smtplib.SMTPException, OSError) as exc:  # a timeout is an OSError
        return Attempt(False, error=bounded(f"{type(exc).__name__}: {exc}", password),
                       retry=True)
    return Attempt(True, status=250)


async def post_mail(sink: EmailSink, note: Notification, *, workspace: Path,
                    limiter: trio.CapacityLimiter) -> Attempt:
    """Send ``note`` by mail, within the sink's timeout.

    Cancellation: the conversation is abandoned in its thread, which ends within the
    socket timeout (``sink.timeout``) of the operation it is in.
    """
    with trio.move_on_after(sink.timeout) as scope:
        return await trio.to_thread.run_sync(partial(send_mail, sink, note, workspace),
                                             abandon_on_cancel=True, limiter=limiter)
    assert scope.cancelled_caught
    return Attempt(False, error=f"no answer within {sink.timeout:g}s", retry=True)
