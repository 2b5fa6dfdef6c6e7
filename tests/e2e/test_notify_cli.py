"""Notifications of local CLI runs (issue 16 item 3): ``flwd JOB`` notifies like a server
does, waiting a bounded time at exit for its deliveries. Mail goes through a real SMTP
conversation with STARTTLS (a self-signed certificate the sink trusts through ``ca_file``)
and AUTH from a credentials file, which must be private to flwd's user."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import sqlite3
import ssl
import subprocess
import threading
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli, write_job

PASSWORD = "smtp-pa55-word-9931"


class SmtpResponder:
    """A minimal SMTP server on 127.0.0.1:0 (its own thread): EHLO, STARTTLS (then AUTH
    PLAIN is offered), MAIL, RCPT, DATA, QUIT; it keeps what each session did."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.sessions: list[dict[str, Any]] = []
        self.done = threading.Condition()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return  # closed
            with connection:
                session: dict[str, Any] = {"steps": []}
                try:
                    self._session(connection, session)
                except (OSError, ssl.SSLError) as exc:
                    session["error"] = repr(exc)
                with self.done:
                    self.sessions.append(session)
                    self.done.notify_all()

    def _session(self, connection: socket.socket, session: dict[str, Any]) -> None:
        opened: list[Any] = []
        try:
            self._converse(connection, session, opened)
        finally:
            for thing in reversed(opened):
                thing.close()

    def _converse(self, connection: socket.socket, session: dict[str, Any],
                  opened: list[Any]) -> None:
        stream: Any = connection
        reader = stream.makefile("rb")
        opened.append(reader)

        def say(text: str) -> None:
            stream.sendall(text.encode() + b"\r\n")

        say("220 localhost ESMTP test")
        while line := reader.readline():
            command = line.decode().strip()
            verb = command.split(" ", 1)[0].upper()
            session["steps"].append(verb)
            if verb == "EHLO":
                say("250-localhost")
                say("250 AUTH PLAIN" if "STARTTLS" in session["steps"] else "250 STARTTLS")
            elif verb == "STARTTLS":
                say("220 go ahead")
                stream = self.tls.wrap_socket(connection, server_side=True)
                reader = stream.makefile("rb")
                opened += [stream, reader]
            elif verb == "AUTH":
                # AUTH PLAIN <base64 of "authzid NUL user NUL password">
                _, user, password = base64.b64decode(command.split()[2]).split(b"\0")
                session["auth"] = (user.decode(), password.decode())
                say("235 ok")
            elif verb in ("MAIL", "RCPT"):
                session.setdefault(verb, []).append(command.upper())
                say("250 ok")
            elif verb == "DATA":
                say("354 end with .")
                data = b""
                while (chunk := reader.readline()) not in (b".\r\n", b""):
                    data += chunk
                session["message"] = data
                say("250 queued")
            elif verb == "QUIT":
                say("221 bye")
                return
            else:
                say("502 not here")

    def wait(self, count: int, timeout: float = 60) -> list[dict[str, Any]]:
        with self.done:
            assert self.done.wait_for(lambda: len(self.sessions) >= count, timeout)
            return list(self.sessions)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[tuple[SmtpResponder, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the SMTP server's certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    responder = SmtpResponder(cert, key)
    yield responder, cert
    responder.close()


MAIL_JOB = """\
notify:
  - on: [failure]
    email:
      smtp_host: 127.0.0.1
      port: {port}
      from: flwd@example.com
      to: [ops@example.com, oncall@example.com]
      credentials_file: {credentials}
      ca_file: {ca}
      backoff: 0
"""


def test_a_cli_run_mails_its_failure_over_starttls_with_the_credentials(
        workspace: Path, data_dir: Path, tmp_path: Path,
        smtp: tuple[SmtpResponder, Path]) -> None:
    responder, cert = smtp
    credentials = tmp_path / "smtp.credentials"
    credentials.write_text(f"alerts@example.com:{PASSWORD}\n")
    credentials.chmod(0o600)
    write_job(workspace, "mailed", MAIL_JOB.format(port=responder.port, credentials=credentials,
                                                   ca=cert), {"100_main.sh": "exit 7\n"})
    done = run_cli(["mailed"], cwd=workspace, data_dir=data_dir)
    assert done.returncode == 1, done.stderr
    # The CLI waited for the delivery before it exited.
    [session] = responder.wait(1, timeout=0.1)
    assert session["steps"][:4] == ["EHLO", "STARTTLS", "EHLO", "AUTH"], session
    assert session["auth"] == ("alerts@example.com", PASSWORD)
    assert session["RCPT"] == ["RCPT TO:<OPS@EXAMPLE.COM>", "RCPT TO:<ONCALL@EXAMPLE.COM>"]
    mail = message_from_bytes(session["message"])
    assert mail["From"] == "flwd@example.com"
    assert mail["To"] == "ops@example.com, oncall@example.com"
    assert mail["Subject"].startswith("[flwd] mailed failed (run-")
    body = mail.get_payload()
    assert "Event: failure" in body and "Exit code: 7" in body and "Link:" not in body
    assert _deliveries(data_dir) == [("notify[0]", "failure", 1, "delivered")]


def test_a_credentials_file_others_can_read_is_refused_without_quoting_it(
        workspace: Path, data_dir: Path, tmp_path: Path,
        smtp: tuple[SmtpResponder, Path]) -> None:
    responder, cert = smtp
    credentials = tmp_path / "smtp.credentials"
    credentials.write_text(f"alerts@example.com:{PASSWORD}\n")
    credentials.chmod(0o644)
    write_job(workspace, "mailed", MAIL_JOB.format(port=responder.port, credentials=credentials,
                                                   ca=cert), {"100_main.sh": "exit 7\n"})
    done = run_cli(["mailed"], cwd=workspace, data_dir=data_dir)
    assert done.returncode == 1, "a notification never changes the run's outcome"
    assert responder.sessions == []
    [(sink, event, attempt, outcome, error)] = _deliveries(data_dir, with_error=True)
    assert (sink, event, attempt, outcome) == ("notify[0]", "failure", 1, "failed")
    assert "mode 0644" in error and f"chmod 600 {credentials}" in error
    assert PASSWORD.encode() not in (data_dir / "flwd.db").read_bytes()
    assert PASSWORD not in done.stderr + done.stdout


def test_a_cli_run_s_command_sink_gets_the_notification_on_stdin(
        workspace: Path, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "note.json"
    write_job(workspace, "ok", f"""\
notify:
  on: [success]
  command: [sh, -c, 'cat > "$0"; echo "$FLWD_NOTIFY_EVENT $FLWD_JOB_ID" >> "$0.env"', "{out}"]
""", {"100_main.sh": "true\n"})
    done = run_cli(["ok"], cwd=workspace, data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    note = json.loads(out.read_text())
    assert (note["event"], note["run"]["job_id"], note["run"]["status"]) == (
        "success", "ok", "completed")
    assert note["run"]["url"] is None, "a CLI run has no server to link to"
    assert Path(f"{out}.env").read_text() == "success ok\n"


def _deliveries(data_dir: Path, *, with_error: bool = False) -> list[tuple[Any, ...]]:
    with sqlite3.connect(data_dir / "flwd.db") as db:
        rows = db.execute("SELECT sink, event, attempt, outcome, detail FROM notify_deliveries "
                          "ORDER BY id").fetchall()
    db.close()
    return [(*row[:4], json.loads(row[4])["error"]) if with_error else tuple(row[:4])
            for row in rows]


def test_a_source_s_job_notifies_only_by_the_workspace_s_rules(
        workspace: Path, data_dir: Path, tmp_path: Path) -> None:
    # Another repository's config must not run a command on this host, nor send the user's
    # secret files or environment anywhere: its notify: rules are ignored, with a warning.
    planted = tmp_path / "planted"
    extra = tmp_path / "repos" / "extra"
    write_job(extra, "hello", f"""\
notify:
  on: [success]
  command: [sh, -c, 'touch "$0"', "{planted}"]
""", {"100_main.sh": "echo hi\n"})
    added = run_cli([":sources", "add", "--type", "local", "--ref", str(extra / "scripts"),
                     "--name", "extras", "--allow-path", str(tmp_path / "repos")],
                    cwd=workspace, data_dir=data_dir)
    assert added.returncode == 0, added.stderr
    listed = run_cli([":jobs"], cwd=workspace, data_dir=data_dir)
    assert "notify: ignored: only the workspace's own configs send notifications, not a " \
           "source's (put the rule in scripts/flwd.yaml with jobs: [extras/hello])" in listed.stderr
    done = run_cli(["extras/hello"], cwd=workspace, data_dir=data_dir)
    assert (done.returncode, done.stdout) == (0, "hi\n"), done.stderr
    assert not planted.exists()
    assert _deliveries(data_dir) == []

    # The workspace's own rule for it is followed.
    out = tmp_path / "note.json"
    (workspace / "scripts" / "flwd.yaml").write_text(f"""\
notify:
  - on: [success]
    jobs: [extras/hello]
    command: [sh, -c, 'cat > "$0"', "{out}"]
""")
    done = run_cli(["extras/hello"], cwd=workspace, data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["run"]["job_id"] == "extras/hello"
    assert not planted.exists()
