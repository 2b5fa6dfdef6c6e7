"""A shell on a pseudo-terminal, driven key by key: completion as a person gets it."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path


class Terminal:
    """``argv`` on a new pty; :meth:`expect` reads until a pattern shows (never sleeps)."""

    def __init__(self, argv: list[str], *, env: dict[str, str], cwd: Path) -> None:
        master, slave = pty.openpty()
        try:
            self.process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                            env=env, cwd=cwd, start_new_session=True)
        finally:
            os.close(slave)
        self.fd = master
        self.output = b""

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def expect(self, pattern: str, timeout: float = 30) -> re.Match[bytes]:
        """The first match of ``pattern`` in the output not consumed yet (which it consumes)."""
        regex = re.compile(pattern.encode())
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.output)
            if match:
                self.output = self.output[match.end():]
                return match
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{pattern!r} never showed; got {self.output[-2000:]!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"the shell exited; got {self.output[-2000:]!r}")
                self.output += chunk

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        os.close(self.fd)
