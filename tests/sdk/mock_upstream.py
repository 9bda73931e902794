"""A scriptable Chat Completions backend for the OpenAI-SDK end-to-end suite.

Standard library only: a ``ThreadingHTTPServer`` on ``127.0.0.1:0`` served
from a daemon thread. Tests script the next replies with ``script(...)``, let
threadline call ``POST /v1/chat/completions``, then inspect the recorded
request bodies in ``requests`` to see exactly what threadline sent upstream.

A scripted reply is a dict::

    {"content": "text" or None,
     "reasoning": "thinking",                                 # optional
     "tool_calls": [{"id": "call_1", "name": "get_weather",
                     "arguments": "{\\"city\\":\\"Paris\\"}"}]}   # optional

Optional keys: ``"reasoning": "text"`` (sent as the message's ``reasoning_content``, as vLLM, llama.cpp and
DeepSeek-style backends send it; streamed, in two pieces before the content) and
``"logprobs": [{token, logprob, bytes, top_logprobs}]`` (the content's tokens, whose texts make up the
content: sent as the choice's ``logprobs.content``; streamed, the content comes one token a chunk, each with
its own entry).

When the queue is empty the reply is ``{"content": "ok"}``. A reply with ``"hold": True`` is streamed up to
its first chunk, then waits until the test calls ``release()`` (or the client hangs up).

Non-streamed requests get one ``chat.completion`` object. Streamed requests
(``"stream": true``) get ``text/event-stream`` frames ``data: <json>\\n\\n``:
the content in two or three pieces, then per tool call a header chunk (id,
type, name, empty arguments) and two argument fragments, then a chunk with
``finish_reason``, then (with ``stream_options.include_usage``) a usage chunk
with ``choices: []``, then ``data: [DONE]``. Responses are HTTP/1.0 style
(``Connection: close``, streamed bodies without ``Content-Length``), so the
body simply ends when the connection closes.

The request body is recorded before the reply is sent, so once threadline has
answered a client the matching upstream request is always in ``requests``.
"""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
MODELS = {
    "object": "list",
    "data": [{"id": "mock-model", "object": "model", "created": 0, "owned_by": "mock"}],
}


def split_text(text: str, parts: int) -> list[str]:
    """``text`` cut into at most ``parts`` non-empty consecutive pieces (fewer if it is shorter)."""
    parts = max(1, min(parts, len(text)))
    size, extra = divmod(len(text), parts)
    pieces, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return [piece for piece in pieces if piece]


def chat_tool_calls(reply: dict[str, Any]) -> list[dict[str, Any]]:
    """The reply's tool calls in the Chat Completions message shape."""
    return [
        {
            "id": call["id"],
            "type": "function",
            "function": {"name": call["name"], "arguments": call["arguments"]},
        }
        for call in reply.get("tool_calls") or []
    ]


def completion(reply: dict[str, Any], model: str) -> dict[str, Any]:
    """The non-streamed ``chat.completion`` answer for a scripted reply."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.get("content")}
    if reply.get("reasoning"):
        message["reasoning_content"] = reply["reasoning"]
    tool_calls = chat_tool_calls(reply)
    if tool_calls:
        message["tool_calls"] = tool_calls
    choice: dict[str, Any] = {
        "index": 0,
        "message": message,
        "finish_reason": "tool_calls" if tool_calls else "stop",
    }
    if reply.get("logprobs"):
        choice["logprobs"] = {"content": reply["logprobs"], "refusal": None}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [choice],
        "usage": dict(USAGE),
    }


def chunks(reply: dict[str, Any], model: str, include_usage: bool) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a streamed scripted reply, in order."""

    def chunk(delta: dict[str, Any], finish_reason: Optional[str] = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    deltas: list[dict[str, Any]] = []
    reasoning = reply.get("reasoning")
    if reasoning:
        deltas.extend({"reasoning_content": piece} for piece in split_text(reasoning, 2))
    content = reply.get("content")
    logprobs = reply.get("logprobs") or []
    if logprobs:
        assert "".join(entry["token"] for entry in logprobs) == content, "the tokens must make up the content"
        deltas.extend({"content": entry["token"], "logprobs": entry} for entry in logprobs)
    elif content:
        parts = 3 if len(content) >= 3 else 2
        deltas.extend({"content": piece} for piece in split_text(content, parts))
    calls = reply.get("tool_calls") or []
    for index, call in enumerate(calls):
        deltas.append(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["name"], "arguments": ""},
                    }
                ]
            }
        )
        arguments = call["arguments"]
        half = (len(arguments) + 1) // 2
        for fragment in (arguments[:half], arguments[half:]):
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
    if deltas:
        deltas[0] = {"role": "assistant", **deltas[0]}

    def with_logprobs(delta: dict[str, Any]) -> dict[str, Any]:
        entry = delta.pop("logprobs", None)
        piece = chunk(delta)
        if entry is not None:
            piece["choices"][0]["logprobs"] = {"content": [entry]}
        return piece

    out = [with_logprobs(delta) for delta in deltas]
    out.append(chunk({}, "tool_calls" if calls else "stop"))
    if include_usage:
        last = chunk({})
        last["choices"] = []
        last["usage"] = dict(USAGE)
        out.append(last)
    return out


class MockUpstream:
    """A running mock backend: ``script`` replies, read ``requests``, ``stop`` when done."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[dict[str, Any]] = []
        self._requests: list[dict[str, Any]] = []
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._released = threading.Event()

    @classmethod
    def start(cls) -> "MockUpstream":
        """Bind 127.0.0.1 on a free port and serve from a daemon thread."""
        mock = cls()
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(mock))
        server.daemon_threads = True
        mock._server = server
        mock._thread = threading.Thread(target=server.serve_forever, name="mock-upstream", daemon=True)
        mock._thread.start()
        return mock

    @property
    def url(self) -> str:
        """The base URL to give threadline, ``http://127.0.0.1:PORT/v1``."""
        assert self._server is not None, "MockUpstream is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def script(self, *replies: dict[str, Any]) -> None:
        """Replace the queue of upcoming replies."""
        with self._lock:
            self._queue = [copy.deepcopy(reply) for reply in replies]

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The parsed JSON bodies of the chat completion requests received so far (a copy)."""
        with self._lock:
            return copy.deepcopy(self._requests)

    def clear(self) -> None:
        """Forget the scripted replies and the recorded requests; held replies wait again."""
        with self._lock:
            self._queue = []
            self._requests = []
        self._released.clear()

    def release(self) -> None:
        """Lets held replies go on."""
        self._released.set()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _record_and_pop(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._requests.append(copy.deepcopy(body))
            return self._queue.pop(0) if self._queue else {"content": "ok"}


def _handler_for(mock: MockUpstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection; bodies may end at close

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
            pass

        def _send_json(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            self._send_json(status, {"error": {"message": message, "type": "invalid_request_error"}})

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            if self.path.split("?")[0] == "/v1/models":
                self._send_json(200, MODELS)
            else:
                self._error(404, f"No route for {self.command} {self.path}.")

        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path.split("?")[0] != "/v1/chat/completions":
                self._error(404, f"No route for {self.command} {self.path}.")
                return
            try:
                body = json.loads(raw)
            except ValueError:
                self._error(400, "The body is not JSON.")
                return
            reply = mock._record_and_pop(body)
            model = body.get("model", "mock-model")
            if not body.get("stream"):
                self._send_json(200, completion(reply, model))
                return
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for i, item in enumerate(chunks(reply, model, include_usage)):
                    if i == 1 and reply.get("hold"):
                        mock._released.wait(timeout=60)
                    self.wfile.write(f"data: {json.dumps(item)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client hung up (a cancelled response)

    return Handler
