"""Fixtures of the real-backend tier: llama.cpp's unmodified ``llama-server`` with a real small chat model
(SmolLM2-135M-Instruct, rendered with llama.cpp's bundled Qwen2.5 template), provided by ``scripts/llama-server``,
and a fresh threadline in front of it for every test (so that what one test teaches threadline of the model's window
does not carry into the next).

llama-server runs with a 512-token context (``-c 512``), so long-conversation behaviour is reached in a few turns,
and logs every prompt it renders (``--log-prompts-dir``): a test reads there exactly what history reached the model.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable, Iterator, Optional

import openai
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "sdk"))

from server_process import STARTUP_TIMEOUT_S, ServerProcess, stop  # noqa: E402

MODEL = "smollm2"
WINDOW = 512
LLAMA_STARTUP_TIMEOUT_S = 120.0


def said(text: str) -> str:
    """A user message as the chat template renders it: what only the client's own turn can put in a prompt (the
    model's answers and summaries may quote the text itself)."""
    return f"<|im_start|>user\n{text}<|im_end|>"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LlamaServer:
    """A running llama-server and the prompts it has rendered."""

    def __init__(self, home: Path, prompts: Path, log: Path) -> None:
        self.prompts = prompts
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        argv = [
            str(home / "bin" / "llama-server"),
            "--model", str(home / "model.gguf"),
            "--alias", MODEL,
            "--jinja", "--chat-template-file", str(home / "template.jinja"),
            "--ctx-size", str(WINDOW), "--parallel", "1",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--threads", "2", "--no-webui",
            "--log-prompts-dir", str(prompts),
        ]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log.open("w"), stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        """Wait until ``/health`` answers 200 (the model is loaded), or fail the session."""
        deadline = time.monotonic() + LLAMA_STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"llama-server exited with {self.proc.returncode}:\n{self.log_tail()}", pytrace=False)
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)  # polling a readiness probe, not synchronising with a test's own request
        pytest.fail(f"llama-server was not ready within {LLAMA_STARTUP_TIMEOUT_S:.0f}s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-60:])

    def mark(self) -> set[str]:
        """The prompts rendered so far (pass to ``prompts_since``)."""
        return set(os.listdir(self.prompts))

    def prompts_since(self, mark: set[str]) -> list[str]:
        """The prompts rendered since ``mark``, oldest first: one per request llama-server received."""
        names = sorted(name for name in os.listdir(self.prompts) if name not in mark)
        return [(self.prompts / name).read_text(errors="replace") for name in names]

    def stop(self) -> None:
        stop(self.proc)


_LLAMA: Optional[LlamaServer] = None
_THREADLINE: Optional[ServerProcess] = None


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama-server, built into the cache by ``scripts/llama-server`` if it is not there yet."""
    global _LLAMA
    home = Path(subprocess.check_output([str(REPO / "scripts" / "llama-server")], text=True).strip())
    work = tmp_path_factory.mktemp("llama")
    server = LlamaServer(home, work / "prompts", work / "llama-server.log")
    _LLAMA = server
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
        _LLAMA = None


def _binary() -> str:
    binary = os.environ.get("THREADLINE_BIN")
    if not binary or not os.access(binary, os.X_OK):
        pytest.fail("THREADLINE_BIN must name the threadline binary (e.g. target/debug/threadline)", pytrace=False)
    return os.path.abspath(binary)


@pytest.fixture
def start_threadline(tmp_path: Path, llama: LlamaServer) -> Iterator[Callable[..., str]]:
    """Starts a threadline in front of llama-server (or as ``config`` sets up its upstreams) and returns its URL."""
    global _THREADLINE
    started: list[ServerProcess] = []

    def start(config: Optional[str] = None) -> str:
        global _THREADLINE
        upstream = ["--upstream-url", f"{llama.url}/v1"]
        if config is not None:
            path = tmp_path / "threadline.toml"
            path.write_text(config.replace("{llama}", llama.url))
            upstream = ["--config", str(path)]
        server = ServerProcess(_binary(), f"sqlite://{tmp_path / 'threadline.db'}", upstream)
        started.append(server)
        _THREADLINE = server
        return server.wait_for_url(STARTUP_TIMEOUT_S)

    try:
        yield start
    finally:
        for server in started:
            server.stop()
        _THREADLINE = None


@pytest.fixture
def base_url(start_threadline: Callable[..., str]) -> str:
    """A threadline in front of llama-server, configured as a user would: by its URL alone."""
    return start_threadline()


@pytest.fixture
def client(base_url: str) -> Iterator[openai.OpenAI]:
    sdk = openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=300.0)
    try:
        yield sdk
    finally:
        sdk.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Attach the tails of threadline's and llama-server's logs to a failing test's report."""
    report = yield
    if report.failed:
        if _THREADLINE is not None:
            report.sections.append(("threadline stderr", _THREADLINE.log_tail()))
        if _LLAMA is not None:
            report.sections.append(("llama-server log", _LLAMA.log_tail()))
    return report
