"""Wire-level conformance: every Response and streamed event threadline sends is validated against the OpenAI
SDK's own pydantic types, and against the fields the Open Responses schema requires (reference §8).

The SDK documents the stream's ``error`` event in its flat form, while the live API and Open Responses nest it
(``{"type":"error","error":{…}}``); threadline sends the nested form, so that event is checked by shape instead.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pydantic
from openai.types.responses import Response, ResponseStreamEvent

EVENTS = pydantic.TypeAdapter(ResponseStreamEvent)

# Open Responses: fields a ResponseResource must carry, with the JSON types they may have.
REQUIRED_RESPONSE_FIELDS: dict[str, tuple[type, ...]] = {
    "id": (str,), "object": (str,), "created_at": (int,), "completed_at": (int, type(None)), "status": (str,),
    "incomplete_details": (dict, type(None)), "model": (str,), "previous_response_id": (str, type(None)),
    "instructions": (str, type(None)), "output": (list,), "error": (dict, type(None)), "tools": (list,),
    "tool_choice": (str, dict), "truncation": (str,), "parallel_tool_calls": (bool,), "text": (dict,),
    "top_p": (int, float), "presence_penalty": (int, float), "frequency_penalty": (int, float),
    "top_logprobs": (int,), "temperature": (int, float), "reasoning": (dict, type(None)), "user": (str, type(None)),
    "usage": (dict, type(None)), "max_output_tokens": (int, type(None)), "max_tool_calls": (int, type(None)),
    "store": (bool,), "background": (bool,), "service_tier": (str,), "metadata": (dict,),
    "safety_identifier": (str, type(None)), "prompt_cache_key": (str, type(None)),
}


def check_response(response: dict[str, Any]) -> None:
    """The response validates as the SDK's Response and carries every Open Responses field."""
    Response.model_validate(response)
    for field, types in REQUIRED_RESPONSE_FIELDS.items():
        assert field in response, field
        value = response[field]
        # bool is an int in Python: a boolean must be asked for by name.
        assert (bool in types) if isinstance(value, bool) else isinstance(value, types), (field, value)
    if response["usage"] is not None:
        assert isinstance(response["usage"]["input_tokens_details"]["cached_tokens"], int)
        assert isinstance(response["usage"]["output_tokens_details"]["reasoning_tokens"], int)
    for item in response["output"]:
        check_item(item)


def check_item(item: dict[str, Any]) -> None:
    """Open Responses: every item has id, type and status; text parts have annotations and logprobs."""
    assert {"id", "type", "status"} <= item.keys(), item
    if item["type"] == "message":
        assert item["role"] == "assistant"
        for part in item["content"]:
            assert part["annotations"] == [] and part["logprobs"] == [], part
    if item["type"] == "function_call":
        assert {"call_id", "name", "arguments"} <= item.keys(), item


def stream_events(base_url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """POSTs a streamed request and returns its events (checking the framing and the final ``[DONE]``)."""
    request = urllib.request.Request(
        f"{base_url}/v1/responses",
        data=json.dumps({**body, "stream": True}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        frames = resp.read().decode().split("\n\n")
    assert frames.pop() == ""
    assert frames.pop() == "data: [DONE]"
    events = []
    for frame in frames:
        event_line, data_line = frame.split("\n")
        event = json.loads(data_line.removeprefix("data: "))
        assert event_line == f"event: {event['type']}"
        events.append(event)
    return events


def check_stream(events: list[dict[str, Any]]) -> None:
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    for event in events:
        if event["type"] == "error":
            assert set(event["error"]) == {"type", "code", "message", "param"}, event
            continue
        EVENTS.validate_python(event)
        if "response" in event:
            check_response(event["response"])
        if "item" in event:
            check_item(event["item"])
        if event["type"] == "response.output_text.delta":
            assert event["logprobs"] == []


def test_streamed_and_stored_text_responses_conform(base_url: str) -> None:
    events = stream_events(base_url, {"model": "echo", "input": "hello", "metadata": {"k": "v"}})
    check_stream(events)
    with urllib.request.urlopen(f"{base_url}/v1/responses/{events[0]['response']['id']}", timeout=30) as resp:
        check_response(json.loads(resp.read()))


def test_a_cut_response_conforms(base_url: str) -> None:
    words = " ".join(f"w{n}" for n in range(30))
    events = stream_events(base_url, {"model": "echo", "input": words, "max_output_tokens": 16})
    assert events[-1]["type"] == "response.incomplete"
    check_stream(events)


def test_function_call_streams_conform(scripted_base_url: str, mock: Any) -> None:
    mock.script({"content": "Checking.", "tool_calls": [{"id": "call_1", "name": "lookup", "arguments": '{"q":"x"}'}]})
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]
    events = stream_events(scripted_base_url, {"model": "mock-model", "input": "find x", "tools": tools})
    assert "response.function_call_arguments.done" in [e["type"] for e in events]
    check_stream(events)
    mock.script({"content": "Found."})
    follow_up = stream_events(
        scripted_base_url,
        {"model": "mock-model", "previous_response_id": events[0]["response"]["id"], "tools": tools,
         "input": [{"type": "function_call_output", "call_id": "call_1", "output": "x is 1"}]},
    )
    check_stream(follow_up)
