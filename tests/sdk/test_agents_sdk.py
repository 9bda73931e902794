"""The OpenAI Agents SDK (``openai-agents``) driving threadline through its own models, runner and sessions.

Every test runs an ``Agent`` whose model points at the server in front of the scriptable mock backend
(``scripted_base_url``), and asserts both what the library returned and the exact history (``messages``) that
threadline sent upstream, which shows that the state the library relies on was kept by threadline.

Covered: ``Runner.run`` chained by ``previous_response_id``; ``Runner.run`` with ``conversation_id`` (a conversation
made with the Conversations API); ``OpenAIConversationsSession``; a ``@function_tool`` whose call and output go back
through stored history (the SDK sends the output with ``previous_response_id``); ``Runner.run_streamed``; and
``OpenAIResponsesWSModel``, the WebSocket model, which puts ``"stream": true`` in every ``response.create``.

The library is asynchronous; each test runs its own event loop with ``asyncio.run``, and makes (and closes) its
clients inside it. Tracing is off: it would try to export to OpenAI.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, TypeVar

import openai
from agents import (
    Agent,
    OpenAIConversationsSession,
    OpenAIResponsesModel,
    OpenAIResponsesWSModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from openai.types.responses import ResponseTextDeltaEvent

from mock_upstream import MockUpstream

set_tracing_disabled(True)

MODEL = "mock-model"
INSTRUCTIONS = "You are a terse assistant."
PARIS_ARGS = '{"city":"Paris"}'
WEATHER = "21 degrees and sunny"

T = TypeVar("T")


def system() -> dict[str, Any]:
    """The agent's instructions as threadline sends them upstream: a system message first, on every turn."""
    return {"role": "system", "content": INSTRUCTIONS}


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def assistant_calls(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """The upstream assistant message carrying one function call and no text."""
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def tool_result(call_id: str, output: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": output}


def histories(mock: MockUpstream) -> list[list[dict[str, Any]]]:
    """The ``messages`` of every request threadline sent upstream, in order."""
    return [body["messages"] for body in mock.requests]


def with_client(scripted_base_url: str, body: Callable[[openai.AsyncOpenAI], Awaitable[T]]) -> T:
    """Runs ``body`` with an async OpenAI client for the server, in an event loop of its own."""

    async def main() -> T:
        client = openai.AsyncOpenAI(base_url=f"{scripted_base_url}/v1", api_key="test", max_retries=0, timeout=30.0)
        try:
            return await body(client)
        finally:
            await client.close()

    return asyncio.run(main())


def agent(client: openai.AsyncOpenAI, **fields: Any) -> Agent[Any]:
    """An agent whose model is threadline's Responses API over HTTP."""
    model = OpenAIResponsesModel(model=MODEL, openai_client=client)
    return Agent(name="Assistant", instructions=INSTRUCTIONS, model=model, **fields)


def test_runs_chained_by_previous_response_id(scripted_base_url: str, mock: MockUpstream) -> None:
    mock.script({"content": "Hello, Ada."}, {"content": "Your name is Ada."})

    async def body(client: openai.AsyncOpenAI) -> None:
        bot = agent(client)
        first = await Runner.run(bot, "Hi, I am Ada.")
        assert first.final_output == "Hello, Ada."
        assert first.last_response_id is not None and first.last_response_id.startswith("resp_")
        second = await Runner.run(bot, "What is my name?", previous_response_id=first.last_response_id)
        assert second.final_output == "Your name is Ada."
        stored = await client.responses.retrieve(second.last_response_id)
        assert stored.previous_response_id == first.last_response_id

    with_client(scripted_base_url, body)
    assert histories(mock) == [
        [system(), user("Hi, I am Ada.")],
        [system(), user("Hi, I am Ada."), assistant("Hello, Ada."), user("What is my name?")],
    ]


def test_runs_in_a_conversation(scripted_base_url: str, mock: MockUpstream) -> None:
    mock.script({"content": "Noted: blue."}, {"content": "Blue."})

    async def body(client: openai.AsyncOpenAI) -> list[Any]:
        conversation = await client.conversations.create()
        bot = agent(client)
        first = await Runner.run(bot, "My favourite colour is blue.", conversation_id=conversation.id)
        assert first.final_output == "Noted: blue."
        second = await Runner.run(bot, "What is my favourite colour?", conversation_id=conversation.id)
        assert second.final_output == "Blue."
        items = [item async for item in client.conversations.items.list(conversation.id, order="asc")]
        return [(item.role, item.content[0].text) for item in items]

    items = with_client(scripted_base_url, body)
    assert items == [
        ("user", "My favourite colour is blue."),
        ("assistant", "Noted: blue."),
        ("user", "What is my favourite colour?"),
        ("assistant", "Blue."),
    ]
    assert histories(mock) == [
        [system(), user("My favourite colour is blue.")],
        [
            system(),
            user("My favourite colour is blue."),
            assistant("Noted: blue."),
            user("What is my favourite colour?"),
        ],
    ]


def test_an_openai_conversations_session(scripted_base_url: str, mock: MockUpstream) -> None:
    mock.script({"content": "Hello, Grace."}, {"content": "You are Grace."})

    async def body(client: openai.AsyncOpenAI) -> list[Any]:
        session = OpenAIConversationsSession(openai_client=client)
        bot = agent(client)
        first = await Runner.run(bot, "I am Grace.", session=session)
        assert first.final_output == "Hello, Grace."
        second = await Runner.run(bot, "Who am I?", session=session)
        assert second.final_output == "You are Grace."
        assert session.session_id.startswith("conv_")
        items = await session.get_items()
        return [(item["role"], item["content"][0]["text"]) for item in items]

    items = with_client(scripted_base_url, body)
    assert items == [
        ("user", "I am Grace."),
        ("assistant", "Hello, Grace."),
        ("user", "Who am I?"),
        ("assistant", "You are Grace."),
    ]
    assert histories(mock) == [
        [system(), user("I am Grace.")],
        [system(), user("I am Grace."), assistant("Hello, Grace."), user("Who am I?")],
    ]


def test_a_function_tool_round_trips_through_stored_history(scripted_base_url: str, mock: MockUpstream) -> None:
    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """Get the current weather in a city.

        Args:
            city: The city name.
        """
        calls.append(city)
        return f"{WEATHER} in {city}"

    call = {"id": "call_1", "name": "get_weather", "arguments": PARIS_ARGS}
    answer = "It is 21 degrees and sunny in Paris."
    mock.script({"content": None, "tool_calls": [call]}, {"content": answer}, {"content": "You asked about Paris."})

    async def body(client: openai.AsyncOpenAI) -> None:
        bot = agent(client, tools=[get_weather])
        # Chained from the first model call on: the SDK sends the tool's output with previous_response_id.
        first = await Runner.run(bot, "What is the weather in Paris?", auto_previous_response_id=True)
        assert first.final_output == answer
        assert calls == ["Paris"]
        outputs = [item for item in first.new_items if item.type == "tool_call_output_item"]
        assert [item.output for item in outputs] == [f"{WEATHER} in Paris"]
        answered = await client.responses.retrieve(first.last_response_id)
        assert answered.previous_response_id is not None
        called = await client.responses.retrieve(answered.previous_response_id)
        assert [item.type for item in called.output] == ["function_call"]
        sent = [item async for item in client.responses.input_items.list(answered.id, order="asc")]
        assert [(item.type, item.call_id) for item in sent] == [("function_call_output", "call_1")]
        later = await Runner.run(bot, "Which city did I ask about?", previous_response_id=first.last_response_id)
        assert later.final_output == "You asked about Paris."

    with_client(scripted_base_url, body)
    question = [system(), user("What is the weather in Paris?")]
    round_trip = [assistant_calls("call_1", "get_weather", PARIS_ARGS), tool_result("call_1", f"{WEATHER} in Paris")]
    assert histories(mock) == [
        question,
        question + round_trip,
        question + round_trip + [assistant(answer), user("Which city did I ask about?")],
    ]
    assert [tool["function"]["name"] for tool in mock.requests[0]["tools"]] == ["get_weather"]


def test_a_streamed_run(scripted_base_url: str, mock: MockUpstream) -> None:
    mock.script({"content": "Hello, Linus."}, {"content": "You are Linus."})

    async def body(client: openai.AsyncOpenAI) -> None:
        bot = agent(client)
        first = await Runner.run(bot, "I am Linus.")
        streamed = Runner.run_streamed(bot, "Who am I?", previous_response_id=first.last_response_id)
        deltas, kinds = [], []
        async for event in streamed.stream_events():
            kinds.append(event.type)
            if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent):
                deltas.append(event.data.delta)
        assert "".join(deltas) == "You are Linus."
        assert len(deltas) > 1, deltas
        assert "run_item_stream_event" in kinds
        assert streamed.is_complete
        assert streamed.final_output == "You are Linus."
        stored = await client.responses.retrieve(streamed.last_response_id)
        assert stored.output_text == "You are Linus."
        assert stored.previous_response_id == first.last_response_id

    with_client(scripted_base_url, body)
    assert histories(mock) == [
        [system(), user("I am Linus.")],
        [system(), user("I am Linus."), assistant("Hello, Linus."), user("Who am I?")],
    ]
    assert mock.requests[1]["stream"] is True


def test_the_websocket_model_across_two_turns(scripted_base_url: str, mock: MockUpstream) -> None:
    mock.script({"content": "Hello, Ada."}, {"content": "Your name is Ada."}, {"content": "Still Ada."})

    async def body(client: openai.AsyncOpenAI) -> None:
        model = OpenAIResponsesWSModel(model=MODEL, openai_client=client)
        try:
            bot = Agent(name="Assistant", instructions=INSTRUCTIONS, model=model)
            first = await Runner.run(bot, "Hi, I am Ada.")
            assert first.final_output == "Hello, Ada."
            second = await Runner.run(bot, "What is my name?", previous_response_id=first.last_response_id)
            assert second.final_output == "Your name is Ada."
            streamed = Runner.run_streamed(bot, "Again?", previous_response_id=second.last_response_id)
            async for _ in streamed.stream_events():
                pass
            assert streamed.final_output == "Still Ada."
        finally:
            await model.close()
        # Both were stored, as a chain.
        stored = await client.responses.retrieve(second.last_response_id)
        assert stored.previous_response_id == first.last_response_id

    with_client(scripted_base_url, body)
    assert histories(mock) == [
        [system(), user("Hi, I am Ada.")],
        [system(), user("Hi, I am Ada."), assistant("Hello, Ada."), user("What is my name?")],
        [
            system(),
            user("Hi, I am Ada."),
            assistant("Hello, Ada."),
            user("What is my name?"),
            assistant("Your name is Ada."),
            user("Again?"),
        ],
    ]
