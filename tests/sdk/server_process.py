"""A threadline process for end-to-end tests: started from a built binary on a free port, its stderr drained in
a background thread (so the pipe never fills) and its tail kept for the reports of failing tests. Shared by the
SDK suite (tests/sdk) and the real-backend tier (tests/real)."""

from __future__ import annotations

import collections
import queue
import re
import subprocess
import threading
import time
from typing import Optional

import pytest

STARTUP_TIMEOUT_S = 60.0
LISTENING_RE = re.compile(r"listening on (http://\S+)")
ANSI_ESCAPE_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # colours in tracing output
LOG_TAIL_LINES = 200


class ServerProcess:
    """A running threadline server and a background reader of its stderr."""

    def __init__(self, binary: str, database_url: str, upstream: list[str]) -> None:
        """Start ``binary serve`` on a free port; ``upstream`` is e.g. ``["--upstream", "echo"]``."""
        self.database_url = database_url
        self.argv = [
            binary,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            database_url,
            *upstream,
        ]
        self.log: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self._lines: queue.Queue[Optional[str]] = queue.Queue()
        self._found_url = threading.Event()
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
        self._reader = threading.Thread(
            target=self._drain_stderr, name="threadline-stderr", daemon=True
        )
        self._reader.start()

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            line = ANSI_ESCAPE_RE.sub("", line.rstrip("\n"))
            self.log.append(line)
            if not self._found_url.is_set():
                self._lines.put(line)
        self._lines.put(None)  # EOF: the process closed stderr (usually: exited)

    def wait_for_url(self, timeout: float) -> str:
        """Return the base URL from the listening line, or fail the session."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                pytest.fail(
                    f"threadline did not print 'listening on http://...' within "
                    f"{timeout:.0f}s\ncommand: {' '.join(self.argv)}\n{self.log_tail()}",
                    pytrace=False,
                )
            try:
                line = self._lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                code = self.proc.wait(timeout=10)
                pytest.fail(
                    f"threadline exited with code {code} before printing its "
                    f"listening line\ncommand: {' '.join(self.argv)}\n{self.log_tail()}",
                    pytrace=False,
                )
            match = LISTENING_RE.search(line)
            if match:
                self._found_url.set()
                return match.group(1).rstrip("/")

    def log_tail(self) -> str:
        lines = list(self.log)
        return "--- threadline stderr (last %d lines) ---\n%s" % (len(lines), "\n".join(lines))

    def stop(self) -> None:
        stop(self.proc)
        self._reader.join(timeout=5)


def stop(proc: subprocess.Popen) -> None:
    """Terminate a process, killing it if it has not exited within 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


