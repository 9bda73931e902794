"""End-to-end tests of function tools, structured output and image input.

These run against the second server (``scripted_client``), whose upstream is
the scriptable mock Chat Completions backend of ``mock_upstream.py``. Each test
scripts the backend's replies with ``mock.script(...)`` and then asserts both
sides: what the SDK got back from threadline, and the exact Chat Completions
body threadline sent upstream (``mock.requests``), which shows how the
Responses request and the rebuilt history were translated.

Covered here: tool definitions and ``tool_choice`` forwarded in the nested
Chat Completions shape; upstream ``tool_calls`` turned into ``function_call``
output items; the agent loop (``function_call_output`` continuing a chain with
``previous_response_id``), non-streamed and streamed, with one and with two
parallel calls; an output for an unknown call; function items given explicitly
in a stateless request; ``responses.parse`` with a Pydantic model and
``json_object`` mapped to ``response_format``; and image parts kept in history.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import openai
import pydantic
import pytest
from openai.lib._parsing._responses import type_to_text_format_param

from mock_upstream import MockUpstream

MODEL = "mock-model"
QUESTION = "What is the weather in Paris?"
PARIS_ARGS = '{"city":"Paris"}'
LONDON_ARGS = '{"city":"London"}'
ANSWER = "It is 21 degrees and sunny in Paris."

WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "The city name."}},
    "required": ["city"],
    "additionalProperties": False,
}
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather in a city.",
    "parameters": WEATHER_PARAMETERS,
}

IMAGE_URL = "data:image/png;base64,iVBORw0KGgo="
IMAGE_INPUT = [
    {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "what is this?"},
            {"type": "input_image", "image_url": IMAGE_URL, "detail": "low"},
        ],
    }
]
IMAGE_UPSTREAM_MESSAGE = {
    "role": "user",
    "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": IMAGE_URL, "detail": "low"}},
    ],
}


def call(call_id: str = "call_1", arguments: str = PARIS_ARGS, name: str = "get_weather") -> dict[str, str]:
    """A tool call as scripted for the mock backend."""
    return {"id": call_id, "name": name, "arguments": arguments}


def tool_call_reply(*calls: dict[str, str], content: Optional[str] = None) -> dict[str, Any]:
    """A scripted upstream reply that calls the given tools."""
    return {"content": content, "tool_calls": list(calls)}


def upstream_tool_call(scripted: dict[str, str]) -> dict[str, Any]:
    """A scripted call as threadline must send it back upstream in an assistant message."""
    return {
        "id": scripted["id"],
        "type": "function",
        "function": {"name": scripted["name"], "arguments": scripted["arguments"]},
    }


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant_calls(*calls: dict[str, str]) -> dict[str, Any]:
    """The upstream assistant message carrying function calls and no text."""
    return {"role": "assistant", "content": None, "tool_calls": [upstream_tool_call(c) for c in calls]}


def tool_result(call_id: str, output: str) -> dict[str, Any]:
    """The upstream ``tool`` message answering a call."""
    return {"role": "tool", "tool_call_id": call_id, "content": output}


def call_output(call_id: str, output: str) -> dict[str, Any]:
    """A ``function_call_output`` input item."""
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def assert_function_call(item: Any, scripted: dict[str, str]) -> None:
    """A completed ``function_call`` output item for the scripted call."""
    assert item.type == "function_call"
    assert item.id.startswith("fc_"), item.id
    assert item.call_id == scripted["id"]
    assert item.name == scripted["name"]
    assert item.arguments == scripted["arguments"]
    assert item.status == "completed"


def create(client: openai.OpenAI, prompt: Any, previous: Optional[str] = None, **kwargs: Any):
    """``responses.create`` of ``prompt`` with the mock model, optionally continuing ``previous``."""
    if previous is not None:
        kwargs["previous_response_id"] = previous
    return client.responses.create(model=MODEL, input=prompt, **kwargs)


def last_request(mock: MockUpstream) -> dict[str, Any]:
    requests = mock.requests
    assert requests, "threadline sent nothing upstream"
    return requests[-1]


# --- the mock upstream itself ------------------------------------------------------------


def test_models_come_from_the_mock_upstream(scripted_client: openai.OpenAI, mock: MockUpstream) -> None:
    assert "mock-model" in [model.id for model in scripted_client.models.list()]
    # Nothing scripted: the mock answers "ok", and got exactly one request.
    assert create(scripted_client, "ping").output_text == "ok"
    assert len(mock.requests) == 1


# --- tool definitions and tool_choice ------------------------------------------------


def test_function_tool_is_forwarded_in_the_nested_shape(scripted_client: openai.OpenAI, mock: MockUpstream) -> None:
    mock.script({"content": "no tool needed"})
    resp = create(scripted_client, QUESTION, tools=[WEATHER_TOOL])
    assert resp.output_text == "no tool needed"

    body = last_request(mock)
    assert body["model"] == MODEL
    assert body["messages"] == [user(QUESTION)]
    assert len(body["tools"]) == 1
    tool = body["tools"][0]
    assert set(tool) == {"type", "function"}
    assert tool["type"] == "function"
    function = tool["function"]
    assert set(function) <= {"name", "description", "parameters", "strict"}, function
    assert function["name"] == "get_weather"
    assert function["description"] == "Get the current weather in a city."
    assert function["parameters"] == WEATHER_PARAMETERS


def test_no_tools_sends_no_tools_upstream(scripted_client: openai.OpenAI, mock: MockUpstream) -> None:
    # parallel_tool_calls means nothing without tools, so it is not forwarded either.
    create(scripted_client, "hi", parallel_tool_calls=False)
    body = last_request(mock)
    assert "tools" not in body
    assert "tool_choice" not in body
    assert "parallel_tool_calls" not in body


@pytest.mark.parametrize("choice", ["auto", "required", "none"])
def test_tool_choice_string_is_forwarded(scripted_client: openai.OpenAI, mock: MockUpstream, choice: str) -> None:
    create(scripted_client, QUESTION, tools=[WEATHER_TOOL], tool_choice=choice)
    assert last_request(mock)["tool_choice"] == choice


def test_tool_choice_function_is_forwarded_nested(scripted_client: openai.OpenAI, mock: MockUpstream) -> None:
    create(scripted_client, QUESTION, tools=[WEATHER_TOOL], tool_choice={"type": "function", "name": "get_weather"})
    assert last_request(mock)["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


@pytest.mark.parametrize("parallel", [True, False])
def test_parallel_tool_calls_is_forwarded(scripted_client: openai.OpenAI, mock: MockUpstream, parallel: bool) -> None:
    create(scripted_client, QUESTION, tools=[WEATHER_TOOL], parallel_tool_calls=parallel)
    assert last_request(mock)["parallel_tool_calls"] is parallel


def test_response_echoes_tools_and_tool_choice(scripted_client: openai.OpenAI, mock: MockUpstream) -> None:
    resp = create(scripted_client, QUESTION, tools=[WEATHER_TOOL], tool_choice="required", parallel_tool_calls=False)
    assert [(tool.type, tool.name) for tool in resp.tools] == [("function", "get_weather")]
    assert resp.tools[0].parameters == WEATHER_PARAMETERS
    assert resp.tool_choice == "required"
    assert resp.parallel_tool_calls is False


# --- tool calls become function_call items ---------------------------------------------


@pytest.mark.parametrize("content", [None, ""])
def test_tool_call_becomes_a_function_call_item(
    scripted_client: openai.OpenAI, mock: MockUpstream, content: Optional[str]
) -> None:
    mock.script(tool_call_reply(call(), content=content))
    resp = create(scripted_client, QUESTION, tools=[WEATHER_TOOL])

    assert resp.status == "completed"
    assert len(resp.output) == 1  # no message item for empty content
    assert_function_call(resp.output[0], call())
    assert resp.output_text == ""
    assert resp.usage is not None
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    assert last_request(mock)["messages"] == [user(QUESTION)]

    # The stored response holds the same item.
    stored = scripted_client.responses.retrieve(resp.id)
    assert stored.output[0].model_dump() == resp.output[0].model_dump()


def test_text_and_tool_call_give_a_message_then_a_function_call(
    scripted_client: openai.OpenAI, mock: MockUpstream
) -> None:
    mock.script(tool_call_reply(call(), content="Let me check."))
    resp = create(scripted_client, QUESTION, tools=[WEATHER_TOOL])
    assert [item.type for item in resp.output] == ["message", "function_call"]
    assert resp.output_text == "Let me check."
    assert_function_call(resp.output[1], call())

    # Continuing: the text and the call travel in one assistant message.
    mock.script({"content": ANSWER})
    nxt = create(scripted_client, [call_output("call_1", '{"temp":21}')], resp.id, tools=[WEATHER_TOOL])
    assert nxt.output_text == ANSWER
    assert last_request(mock)["messages"] == [
        user(QUESTION),
        {"role": "assistant", "content": "Let me check.", "tool_calls": [upstream_tool_call(call())]},
        tool_result("call_1", '{"temp":21}'),
    ]


# --- the agent loop ------------------------------------------------------------------------


def test_agent_loop(scripted_client: openai.OpenAI, mock: MockUpstream) -> None:
    mock.script(tool_call_reply(call()), {"content": ANSWER}, {"content": "Probably rain."})

    first = create(scripted_client, QUESTION, tools=[WEATHER_TOOL])
    assert len(first.output) == 1
    assert_function_call(first.output[0], call())

    second = create(scripted_client, [call_output("call_1", '{"temp":21}')], first.id, tools=[WEATHER_TOOL])
    assert second.output_text == ANSWER
    assert second.status == "completed"
    assert second.previous_response_id == first.id
    assert [item.type for item in second.output] == ["message"]

    requests = mock.requests
    assert len(requests) == 2
    assert requests[0]["messages"] == [user(QUESTION)]
    assert requests[1]["messages"] == [
        user(QUESTION),
        assistant_calls(call()),
        tool_result("call_1", '{"temp":21}'),
    ]

    # The turn's input is listed as the function_call_output item it was.
    listed = scripted_client.responses.input_items.list(second.id).data
    assert [(item.type, item.call_id, item.output) for item in listed] == [
        ("function_call_output", "call_1", '{"temp":21}')
    ]

    # The whole loop stays in the chain for the next user turn.
    third = create(scripted_client, "And tomorrow?", second.id)
    assert third.output_text == "Probably rain."
    assert last_request(mock)["messages"] == [
        user(QUESTION),
        assistant_calls(call()),
        tool_result("call_1", '{"temp":21}'),
        {"role": "assistant", "content": ANSWER},
        user("And tomorrow?"),
    ]


def function_call_events(events: list, scripted: dict[str, str], output_index: int) -> str:
    """Check the events of one streamed function call; return its item id."""
    mine = [e for e in events if getattr(e, "output_index", None) == output_index]
    types = [e.type for e in mine]
    deltas = types.count("response.function_call_arguments.delta")
    assert deltas >= 1, types
    assert types == (
        ["response.output_item.added"]
        + ["response.function_call_arguments.delta"] * deltas
        + ["response.function_call_arguments.done", "response.output_item.done"]
    )

    added, done, item_done = mine[0], mine[-2], mine[-1]
    item_id = added.item.id
    assert item_id.startswith("fc_"), item_id
    assert added.item.type == "function_call"
    assert added.item.status == "in_progress"
    assert added.item.arguments == ""
    assert added.item.call_id == scripted["id"]
    assert added.item.name == scripted["name"]

    assert {e.item_id for e in mine[1:-1]} == {item_id}
    assert "".join(e.delta for e in mine[1:-2]) == scripted["arguments"]
    assert done.arguments == scripted["arguments"]
    assert done.to_dict().get("name") == scripted["name"]

    assert item_done.item.id == item_id
    assert_function_call(item_done.item, scripted)
    return item_id


def test_agent_loop_streamed(scripted_client: openai.OpenAI, mock: MockUpstream) -> None:
    mock.script(tool_call_reply(call()), {"content": ANSWER})

    with scripted_client.responses.stream(model=MODEL, input=QUESTION, tools=[WEATHER_TOOL]) as stream:
        events = list(stream)
        first = stream.get_final_response()

    # Exactly: created, in_progress, the call's events (all at output_index 0), completed.
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert {e.output_index for e in events[2:-1]} == {0}
    item_id = function_call_events(events, call(), 0)

    assert first.status == "completed"
    assert len(first.output) == 1
    assert_function_call(first.output[0], call())
    assert first.output[0].id == item_id
    assert mock.requests[0]["stream"] is True
    assert mock.requests[0]["messages"] == [user(QUESTION)]
    assert scripted_client.responses.retrieve(first.id).output[0].id == item_id

    # Second turn, raw create(stream=True): the answer to the function output.
    with scripted_client.responses.create(
        model=MODEL,
        input=[call_output("call_1", '{"temp":21}')],
        previous_response_id=first.id,
        tools=[WEATHER_TOOL],
        stream=True,
    ) as raw_stream:
        second_events = list(raw_stream)
    completed = second_events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == ANSWER
    assert completed.response.previous_response_id == first.id
    deltas = [e.delta for e in second_events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == ANSWER

    assert mock.requests[1]["messages"] == [
        user(QUESTION),
        assistant_calls(call()),
        tool_result("call_1", '{"temp":21}'),
    ]


def test_text_and_tool_call_streamed(scripted_client: openai.OpenAI, mock: MockUpstream) -> None:
    mock.script(tool_call_reply(call(), content="Let me check."))

    with scripted_client.responses.stream(model=MODEL, input=QUESTION, tools=[WEATHER_TOOL]) as stream:
        events = list(stream)
        final = stream.get_final_response()

    # The message comes first, fully closed, then the call as the second output item.
    message_events = [e.type for e in events if getattr(e, "output_index", None) == 0]
    deltas = message_events.count("response.output_text.delta")
    assert message_events == (
        ["response.output_item.added", "response.content_part.added"]
        + ["response.output_text.delta"] * deltas
        + ["response.output_text.done", "response.content_part.done", "response.output_item.done"]
    )
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Let me check."
    item_id = function_call_events(events, call(), 1)
    types = [e.type for e in events]
    assert types.index("response.function_call_arguments.done") > types.index("response.output_text.done")

    assert [item.type for item in final.output] == ["message", "function_call"]
    assert final.output_text == "Let me check."
    assert final.output[1].id == item_id


def test_parallel_calls_and_their_outputs(scripted_client: openai.OpenAI, mock: MockUpstream) -> None:
    paris, london = call("call_1", PARIS_ARGS), call("call_2", LONDON_ARGS)
    mock.script(tool_call_reply(paris, london), {"content": "Paris 21, London 15."})

    first = create(scripted_client, "Weather in Paris and London?", tools=[WEATHER_TOOL])
    assert len(first.output) == 2
    assert_function_call(first.output[0], paris)
    assert_function_call(first.output[1], london)
    assert first.output[0].id != first.output[1].id

    second = create(
        scripted_client,
        [call_output("call_1", '{"temp":21}'), call_output("call_2", '{"temp":15}')],
        first.id,
        tools=[WEATHER_TOOL],
    )
    assert second.output_text == "Paris 21, London 15."
    assert last_request(mock)["messages"] == [
        user("Weather in Paris and London?"),
        assistant_calls(paris, london),
        tool_result("call_1", '{"temp":21}'),
        tool_result("call_2", '{"temp":15}'),
    ]


def test_parallel_calls_streamed(scripted_client: openai.OpenAI, mock: MockUpstream) -> None:
    paris, london = call("call_1", PARIS_ARGS), call("call_2", LONDON_ARGS)
    mock.script(tool_call_reply(paris, london))

    with scripted_client.responses.stream(
        model=MODEL, input="Weather in Paris and London?", tools=[WEATHER_TOOL]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()

    first_id = function_call_events(events, paris, 0)
    second_id = function_call_events(events, london, 1)
    assert first_id != second_id
    assert [e.type for e in events if not hasattr(e, "output_index")] == [
        "response.created",
        "response.in_progress",
        "response.completed",
    ]
    assert [item.id for item in final.output] == [first_id, second_id]
    assert_function_call(final.output[0], paris)
    assert_function_call(final.output[1], london)


def test_output_for_an_unknown_call_is_rejected(scripted_client: openai.OpenAI, mock: MockUpstream) -> None:
    mock.script(tool_call_reply(call()))
    first = create(scripted_client, QUESTION, tools=[WEATHER_TOOL])

    with pytest.raises(openai.BadRequestError) as info:
        create(scripted_client, [call_output("call_nope", "{}")], first.id, tools=[WEATHER_TOOL])
    assert info.value.status_code == 400
    assert info.value.type == "invalid_request_error"

    # Without any history there is no call to answer either.
    with pytest.raises(openai.BadRequestError) as info:
        create(scripted_client, [call_output("call_1", "{}")], tools=[WEATHER_TOOL])
    assert info.value.status_code == 400

    # Both were refused before anything was sent upstream.
    assert len(mock.requests) == 1


def test_stateless_function_items_in_input(scripted_client: openai.OpenAI, mock: MockUpstream) -> None:
    mock.script({"content": "f is done."})
    resp = create(
        scripted_client,
        [
            user("Run f."),
            {"type": "function_call", "call_id": "call_9", "name": "f", "arguments": "{}"},
            call_output("call_9", "done"),
        ],
    )
    assert resp.output_text == "f is done."
    assert last_request(mock)["messages"] == [
        user("Run f."),
        assistant_calls(call("call_9", "{}", name="f")),
        tool_result("call_9", "done"),
    ]


# --- structured output ---------------------------------------------------------------------


class Weather(pydantic.BaseModel):
    city: str
    temperature_c: int
    conditions: str


def test_parse_with_a_pydantic_model(scripted_client: openai.OpenAI, mock: MockUpstream) -> None:
    expected = Weather(city="Paris", temperature_c=21, conditions="sunny")
    mock.script({"content": expected.model_dump_json()})

    resp = scripted_client.responses.parse(model=MODEL, input="Weather in Paris as JSON.", text_format=Weather)
    assert resp.output_parsed == expected
    assert resp.output_text == expected.model_dump_json()

    sent = type_to_text_format_param(Weather)  # exactly what the SDK put in text.format
    assert sent["type"] == "json_schema"
    assert last_request(mock)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": sent["name"], "schema": sent["schema"], "strict": True},
    }

    # The response echoes the format it was asked for.
    assert resp.text.format.type == "json_schema"
    assert resp.text.format.name == sent["name"]
    assert resp.text.format.schema_ == sent["schema"]


def test_parse_streamed_with_a_pydantic_model(scripted_client: openai.OpenAI, mock: MockUpstream) -> None:
    expected = Weather(city="Oslo", temperature_c=-3, conditions="snow")
    mock.script({"content": expected.model_dump_json()})

    with scripted_client.responses.stream(model=MODEL, input="Weather in Oslo.", text_format=Weather) as stream:
        list(stream)
        final = stream.get_final_response()
    assert final.output_parsed == expected
    body = last_request(mock)
    assert body["stream"] is True
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == type_to_text_format_param(Weather)["schema"]


def test_json_object_format(scripted_client: openai.OpenAI, mock: MockUpstream) -> None:
    mock.script({"content": '{"a": 1}'})
    resp = create(scripted_client, "Some JSON please.", text={"format": {"type": "json_object"}})
    assert json.loads(resp.output_text) == {"a": 1}
    assert last_request(mock)["response_format"] == {"type": "json_object"}
    assert resp.text.format.type == "json_object"


# --- images ----------------------------------------------------------------------------------


def test_image_input_is_sent_as_image_url_parts(scripted_client: openai.OpenAI, mock: MockUpstream) -> None:
    mock.script({"content": "A tiny PNG."}, {"content": "Still a tiny PNG."})

    first = create(scripted_client, IMAGE_INPUT)
    assert first.output_text == "A tiny PNG."
    assert last_request(mock)["messages"] == [IMAGE_UPSTREAM_MESSAGE]

    # The stored input keeps the image part.
    listed = scripted_client.responses.input_items.list(first.id).data
    assert len(listed) == 1
    assert [part.type for part in listed[0].content] == ["input_text", "input_image"]
    assert listed[0].content[1].image_url == IMAGE_URL
    assert listed[0].content[1].detail == "low"

    # Continuing the chain sends the same parts again in the history.
    second = create(scripted_client, "and now?", first.id)
    assert second.output_text == "Still a tiny PNG."
    assert last_request(mock)["messages"] == [
        IMAGE_UPSTREAM_MESSAGE,
        {"role": "assistant", "content": "A tiny PNG."},
        user("and now?"),
    ]
