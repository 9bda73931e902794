"""Pytest fixtures for the OpenAI-SDK end-to-end suite.

One threadline server is started per test session from the binary named by
the ``THREADLINE_BIN`` environment variable, with the built-in ``echo``
upstream and a fresh SQLite database in a temporary directory. The fixture
waits for the ``listening on http://HOST:PORT`` line on the server's stderr,
then keeps draining stderr in a background thread so the pipe never fills.
The tail of that log is attached to the report of every failing test.
"""

from __future__ import annotations

import collections
import os
import queue
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator, Optional

import openai
import pytest

STARTUP_TIMEOUT_S = 60.0
LISTENING_RE = re.compile(r"listening on (http://\S+)")
ANSI_ESCAPE_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # colours in tracing output
LOG_TAIL_LINES = 200


class ServerProcess:
    """A running threadline server and a background reader of its stderr."""

    def __init__(self, binary: str, db_path: Path) -> None:
        self.argv = [
            binary,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            f"sqlite://{db_path}",
            "--upstream",
            "echo",
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
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._reader.join(timeout=5)


_SERVER: Optional[ServerProcess] = None


@pytest.fixture(scope="session")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start the server once per session and yield its raw URL (no ``/v1``)."""
    global _SERVER
    binary = os.environ.get("THREADLINE_BIN")
    if not binary:
        pytest.fail(
            "THREADLINE_BIN is not set: point it at the threadline binary, "
            "e.g. THREADLINE_BIN=target/debug/threadline",
            pytrace=False,
        )
    binary = os.path.abspath(binary)
    if not os.access(binary, os.X_OK):
        pytest.fail(f"THREADLINE_BIN={binary} is not an executable file", pytrace=False)

    db_path = tmp_path_factory.mktemp("threadline") / "sdk.db"
    server = ServerProcess(binary, db_path)
    _SERVER = server
    try:
        yield server.wait_for_url(STARTUP_TIMEOUT_S)
    finally:
        server.stop()
        _SERVER = None


@pytest.fixture(scope="session")
def client(base_url: str) -> Iterator[openai.OpenAI]:
    """An official SDK client for the server; no retries so errors surface at once."""
    sdk = openai.OpenAI(base_url=f"{base_url}/v1", api_key="test", max_retries=0, timeout=30.0)
    try:
        yield sdk
    finally:
        sdk.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Attach the server's recent stderr to failing tests' reports."""
    report = yield
    if report.failed and _SERVER is not None:
        report.sections.append(("threadline stderr", _SERVER.log_tail()))
    return report
