"""The MCP server with the official MCP Python client, over Streamable HTTP (``/mcp`` of the server in front of
the mock backend) and over stdio (launching the ``mcpServers`` command of docs/mcp.md, with the test's configuration
as its environment, on the same database): initialize, the tools' exact schemas, a two-turn conversation by
``response_id`` with the exact upstream messages, a branch, ``system_prompt`` kept from the first turn and ignored
later, ``stored_until`` from the retention settings, errors as ``isError`` results, and turns continued from MCP
through ``/v1/responses`` and ``/api/v1/chat`` and back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import openai
import pytest

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mock_upstream import MockUpstream

MCP_DOC = Path(__file__).resolve().parents[2] / "docs" / "mcp.md"
MODEL = "mock-model"
RETENTION_S = 30 * 86_400  # the default retention.responses
IGNORED = (
    "system_prompt was ignored: it is only used when starting a conversation (without response_id); the "
    "conversation keeps the one it started with."
)


def documented_server() -> dict[str, Any]:
    """The ``threadline`` entry of the ``mcpServers`` snippet in docs/mcp.md."""
    blocks = re.findall(r"```json\n(.*?)```", MCP_DOC.read_text(encoding="utf-8"), re.S)
    snippets = [json.loads(block) for block in blocks if '"mcpServers"' in block]
    assert len(snippets) == 1
    return snippets[0]["mcpServers"]["threadline"]


@contextlib.asynccontextmanager
async def http_session(base_url: str) -> AsyncIterator[ClientSession]:
    async with streamable_http_client(f"{base_url}/mcp") as (read, write):
        async with ClientSession(read, write) as session:
            yield session


@contextlib.asynccontextmanager
async def stdio_session(database_url: str, upstream_url: str) -> AsyncIterator[ClientSession]:
    """Launches exactly the documented command (its ``threadline`` being the binary under test), its environment
    the snippet's variables set to this test's configuration."""
    server = documented_server()
    assert server["command"] == "threadline"
    values = {
        "THREADLINE_DATABASE_URL": database_url,
        "THREADLINE_UPSTREAM_URL": upstream_url,
        "THREADLINE_MCP__DEFAULT_MODEL": MODEL,
    }
    assert sorted(server["env"]) == sorted(values)
    params = StdioServerParameters(command=os.environ["THREADLINE_BIN"], args=server["args"], env=values)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            yield session


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def system(text: str) -> dict[str, Any]:
    return {"role": "system", "content": text}


async def ok(session: ClientSession, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A tool call that succeeds: its structured content, which its text repeats."""
    result = await session.call_tool(tool, arguments)
    assert result.is_error is False, result
    assert len(result.content) == 1
    assert json.loads(result.content[0].text) == result.structured_content
    return result.structured_content


async def error(session: ClientSession, tool: str, arguments: dict[str, Any]) -> str:
    """A tool call that fails: its message."""
    result = await session.call_tool(tool, arguments)
    assert result.is_error is True, result
    assert result.structured_content is None
    return result.content[0].text


def post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def rfc3339(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


EXPECTED_SCHEMAS = {
    "stateful_chat": {
        "type": "object",
        "properties": {
            "prompt": {"description": "What to say in this turn.", "type": "string"},
            "response_id": {
                "description": "Continue from this stored turn (any earlier turn's id, to branch); null or absent "
                "starts a conversation.",
                "type": ["string", "null"],
            },
            "model": {"description": "The model to ask; default: the server's `mcp.default_model`.", "type": "string"},
            "system_prompt": {
                "description": "Instructions kept for the whole conversation: only when starting one (with "
                "`response_id`, it is ignored).",
                "type": ["string", "null"],
            },
            "include_reasoning": {
                "description": "Return the model's reasoning text or summary, when it produced one.",
                "type": "boolean",
                "default": False,
            },
            "temperature": {
                "description": "Sampling temperature, 0 to 2.",
                "type": ["number", "null"],
                "format": "double",
                "minimum": 0,
                "maximum": 2,
            },
            "max_tokens": {
                "description": "Most tokens the answer may have.",
                "type": ["integer", "null"],
                "format": "uint32",
                "minimum": 1,
            },
        },
        "additionalProperties": False,
        "required": ["prompt"],
    },
    "get_conversation": {
        "type": "object",
        "properties": {
            "response_id": {"description": "The last turn of the chain to read.", "type": "string"},
            "limit": {
                "description": "Most turns to return, the newest ones (1 to 100).",
                "type": "integer",
                "format": "uint32",
                "minimum": 1,
                "maximum": 100,
                "default": 20,
            },
        },
        "additionalProperties": False,
        "required": ["response_id"],
    },
    "delete_conversation_turn": {
        "type": "object",
        "properties": {"response_id": {"description": "The turn to delete.", "type": "string"}},
        "additionalProperties": False,
        "required": ["response_id"],
    },
}


async def scenario(
    session: ClientSession, mock: MockUpstream, client: openai.OpenAI, base_url: str, pass_model: bool
) -> None:
    """Everything a host does with the tools. `model` is passed when `pass_model` (over HTTP, where the server has
    no default), else left to `mcp.default_model` (over stdio)."""

    def args(arguments: dict[str, Any]) -> dict[str, Any]:
        return {**arguments, "model": MODEL} if pass_model else arguments

    info = await session.initialize()
    assert info.server_info.name == "threadline"
    assert info.capabilities.tools is not None
    tools = (await session.list_tools()).tools
    assert {tool.name: tool.input_schema for tool in tools} == EXPECTED_SCHEMAS
    assert [tool.name for tool in tools] == list(EXPECTED_SCHEMAS)

    mock.script({"content": "a1"}, {"content": "a2"}, {"content": "a3"})
    first = await ok(session, "stateful_chat", args({"prompt": "u1", "system_prompt": "Be terse."}))
    assert {key: first[key] for key in ("content", "status", "model")} == {
        "content": "a1",
        "status": "completed",
        "model": MODEL,
    }
    assert set(first) == {"content", "response_id", "status", "model", "usage", "stored_until"}
    assert first["usage"]["input_tokens"] == 10 and first["usage"]["output_tokens"] == 5
    created_at = client.responses.retrieve(first["response_id"]).created_at
    assert first["stored_until"] == rfc3339(int(created_at) + RETENTION_S)
    second = await ok(session, "stateful_chat", args({"prompt": "u2", "response_id": first["response_id"]}))
    assert second["content"] == "a2"
    branch = await ok(
        session,
        "stateful_chat",
        args({"prompt": "u3", "response_id": first["response_id"], "system_prompt": "Be verbose."}),
    )
    assert branch["note"] == IGNORED
    requests = mock.requests
    assert [request["messages"] for request in requests] == [
        [system("Be terse."), user("u1")],
        [system("Be terse."), user("u1"), assistant("a1"), user("u2")],
        [system("Be terse."), user("u1"), assistant("a1"), user("u3")],
    ]
    assert all(request["model"] == MODEL for request in requests)
    chain = await ok(session, "get_conversation", {"response_id": second["response_id"]})
    assert [(turn["prompt"], turn["content"], turn["system_prompt"]) for turn in chain["turns"]] == [
        ("u1", "a1", "Be terse."),
        ("u2", "a2", None),
    ]
    assert chain["has_more"] is False

    # Continued through /v1/responses and /api/v1/chat, then back through MCP.
    mock.clear()
    mock.script({"content": "a4"}, {"content": "a5"}, {"content": "a6"})
    responses = client.responses.create(model=MODEL, input="u4", previous_response_id=second["response_id"])
    lm = post_json(
        f"{base_url}/api/v1/chat", {"model": MODEL, "input": "u5", "previous_response_id": responses.id}
    )
    back = await ok(session, "stateful_chat", args({"prompt": "u6", "response_id": lm["response_id"]}))
    assert back["content"] == "a6"
    assert mock.requests[2]["messages"] == [
        system("Be terse."),
        user("u1"),
        assistant("a1"),
        user("u2"),
        assistant("a2"),
        user("u4"),
        assistant("a4"),
        user("u5"),
        assistant("a5"),
        user("u6"),
    ]

    # Errors are tool results.
    unknown = "resp_0123456789abcdef0123456789abcdef"
    assert await error(session, "stateful_chat", args({"prompt": "x", "response_id": unknown})) == (
        f"Previous response with id '{unknown}' not found."
    )
    assert await error(session, "get_conversation", {"response_id": unknown}) == (
        f"Response with id '{unknown}' not found."
    )
    assert await error(session, "stateful_chat", args({"prompt": "x", "temperature": 3})) == (
        "Invalid arguments: 'temperature' must be between 0 and 2."
    )
    assert await error(session, "stateful_chat", {}) == "Invalid arguments: missing field `prompt`."
    deleted = await ok(session, "delete_conversation_turn", {"response_id": back["response_id"]})
    assert deleted == {"response_id": back["response_id"], "deleted": True}
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(back["response_id"])


def test_mcp_over_streamable_http(
    scripted_base_url: str, scripted_client: openai.OpenAI, mock: MockUpstream
) -> None:
    async def go() -> None:
        async with http_session(scripted_base_url) as session:
            await scenario(session, mock, scripted_client, scripted_base_url, pass_model=True)

    asyncio.run(go())


def test_mcp_over_stdio_with_the_documented_command(
    scripted_base_url: str,
    scripted_database_url: str,
    scripted_client: openai.OpenAI,
    mock: MockUpstream,
) -> None:
    async def go() -> None:
        async with stdio_session(scripted_database_url, mock.url) as session:
            await scenario(session, mock, scripted_client, scripted_base_url, pass_model=False)

    asyncio.run(go())


def test_a_malformed_mcp_request_is_an_openai_shaped_error(scripted_base_url: str) -> None:
    request = urllib.request.Request(
        f"{scripted_base_url}/mcp", data=b"{}", headers={"content-type": "application/json"}, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 406
    assert json.loads(refused.value.read()) == {
        "error": {
            "message": "Not Acceptable: Client must accept both application/json and text/event-stream",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
