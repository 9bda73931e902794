"""Pytest fixtures for the OpenAI-SDK end-to-end suite.

One threadline server is started per test session from the binary named by
the ``THREADLINE_BIN`` environment variable, with the built-in ``echo``
upstream and a fresh SQLite database in a temporary directory. The fixture
waits for the ``listening on http://HOST:PORT`` line on the server's stderr,
then keeps draining stderr in a background thread so the pipe never fills.
The tail of that log is attached to the report of every failing test.

A second server, started the same way but pointed at a scriptable mock Chat
Completions backend (``mock_upstream.py``) with ``--upstream-url``, backs the
``scripted_base_url`` / ``scripted_client`` fixtures; the ``mock`` fixture
hands a test that backend with an empty reply queue and no recorded requests.
A failing test that used it also gets the mock's recorded upstream bodies in
its report.
"""

from __future__ import annotations

import json
import os
from typing import Iterator, Optional

import openai
import pytest

from mock_upstream import MockUpstream
from server_process import STARTUP_TIMEOUT_S, ServerProcess

# The running servers, by the name of the fixture that started them: their logs
# go into the reports of failing tests that used that fixture.
_SERVERS: dict[str, ServerProcess] = {}
_MOCK: Optional[MockUpstream] = None


def _threadline_binary() -> str:
    """The absolute path of the binary named by THREADLINE_BIN, or fail the session."""
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
    return binary


def _serve(tmp_path_factory: pytest.TempPathFactory, fixture: str, upstream: list[str]) -> Iterator[str]:
    """Run one server for the session and yield its raw URL. Its store is a fresh SQLite file, or the database
    named by ``THREADLINE_SDK_DATABASE_URL`` (``scripts/test`` runs the suite a second time on Postgres)."""
    binary = _threadline_binary()
    database_url = os.environ.get("THREADLINE_SDK_DATABASE_URL") or (
        f"sqlite://{tmp_path_factory.mktemp('threadline') / 'sdk.db'}"
    )
    server = ServerProcess(binary, database_url, upstream)
    _SERVERS[fixture] = server
    try:
        yield server.wait_for_url(STARTUP_TIMEOUT_S)
    finally:
        server.stop()
        _SERVERS.pop(fixture, None)


def _sdk_client(base_url: str) -> Iterator[openai.OpenAI]:
    """An official SDK client for a server; no retries so errors surface at once."""
    sdk = openai.OpenAI(base_url=f"{base_url}/v1", api_key="test", max_retries=0, timeout=30.0)
    try:
        yield sdk
    finally:
        sdk.close()


@pytest.fixture(scope="session")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start the server once per session and yield its raw URL (no ``/v1``)."""
    yield from _serve(tmp_path_factory, "base_url", ["--upstream", "echo"])


@pytest.fixture(scope="session")
def client(base_url: str) -> Iterator[openai.OpenAI]:
    """An official SDK client for the server; no retries so errors surface at once."""
    yield from _sdk_client(base_url)


@pytest.fixture(scope="session")
def mock_upstream() -> Iterator[MockUpstream]:
    """The scriptable Chat Completions backend, running for the whole session."""
    global _MOCK
    mock = MockUpstream.start()
    _MOCK = mock
    try:
        yield mock
    finally:
        mock.stop()
        _MOCK = None


@pytest.fixture(scope="session")
def scripted_base_url(tmp_path_factory: pytest.TempPathFactory, mock_upstream: MockUpstream) -> Iterator[str]:
    """A second server, like ``base_url``'s but in front of the mock backend; its raw URL."""
    yield from _serve(tmp_path_factory, "scripted_base_url", ["--upstream-url", mock_upstream.url])


@pytest.fixture(scope="session")
def scripted_database_url(scripted_base_url: str) -> str:
    """The database of the server in front of the mock backend (for another process to share it)."""
    return _SERVERS["scripted_base_url"].database_url


@pytest.fixture(scope="session")
def scripted_client(scripted_base_url: str) -> Iterator[openai.OpenAI]:
    """An SDK client for the server in front of the mock backend; no retries."""
    yield from _sdk_client(scripted_base_url)


@pytest.fixture
def mock(mock_upstream: MockUpstream) -> MockUpstream:
    """The mock backend with an empty reply queue and no recorded requests."""
    mock_upstream.clear()
    return mock_upstream


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Attach the recent stderr of the servers a failing test used (and the mock's requests) to its report."""
    report = yield
    if report.failed:
        used = set(getattr(item, "fixturenames", ()))
        logs = (
            ("base_url", "threadline stderr"),
            ("scripted_base_url", "threadline (mock upstream) stderr"),
        )
        for fixture, title in logs:
            server = _SERVERS.get(fixture)
            if fixture in used and server is not None:
                report.sections.append((title, server.log_tail()))
        if "mock" in used and _MOCK is not None:
            bodies = "\n".join(json.dumps(body) for body in _MOCK.requests)
            report.sections.append(("mock upstream requests", bodies or "(none)"))
    return report
