"""End-to-end tests of threadline's streaming through the official OpenAI Python SDK.

The server runs with the built-in ``echo`` upstream, which answers with
``echo: <last user text> [turn N, M messages in context]`` and, when streamed,
delivers that reply in word-sized pieces (``str::split_inclusive(' ')`` in Rust,
see ``pieces`` below), one ``response.output_text.delta`` per piece. Every
event sequence, delta and text is therefore known exactly in advance.

Covered here: the ``responses.stream`` helper, raw ``create(stream=True)``
iteration, chaining from streamed responses, the replay of a stored response
(``retrieve(stream=True)``, ``starting_after``, ``stream(response_id=...)``),
a stream cut by ``max_output_tokens``, the SSE framing on the wire, errors
raised before streaming starts, and streamed Chat Completions.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any, Optional

import openai
import pytest

from wire import echo

MODEL = "echo"

# Twenty words: the echo reply to it has 27, more than max_output_tokens=16.
LONG_INPUT = (
    "one two three four five six seven eight nine ten "
    "eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty"
)

# The events around the deltas of a single assistant message.
HEAD = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
]
TAIL = [
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]
LIFECYCLE = {
    "response.created",
    "response.in_progress",
    "response.completed",
    "response.incomplete",
    "response.failed",
}


def pieces(text: str) -> list[str]:
    """The deltas the echo upstream streams for ``text`` (Rust ``split_inclusive(' ')``)."""
    return [piece for piece in re.findall(r"[^ ]* ?|[^ ]+$", text) if piece]


def expected_types(deltas: int, terminal: str = "response.completed") -> list[str]:
    """The exact event types of a one-message response streamed in ``deltas`` pieces."""
    return HEAD + ["response.output_text.delta"] * deltas + TAIL + [terminal]


def summary(events) -> list[tuple[str, int, Optional[str]]]:
    """(type, sequence_number, delta or None) for each event: the shape compared across replays."""
    return [(e.type, e.sequence_number, getattr(e, "delta", None)) for e in events]


def deltas_of(events) -> list[str]:
    """The text deltas, in order."""
    return [e.delta for e in events if e.type == "response.output_text.delta"]


def create_stream(client: openai.OpenAI, text: Any, previous: Optional[str] = None, **kwargs: Any) -> list:
    """``responses.create(stream=True)`` with the echo model, fully consumed into a list of events."""
    if previous is not None:
        kwargs["previous_response_id"] = previous
    with client.responses.create(model=MODEL, input=text, stream=True, **kwargs) as stream:
        return list(stream)


def raw_stream(base_url: str, body: Any) -> tuple[int, str, str]:
    """POST /v1/responses bypassing the SDK; return (status, content-type, decoded body)."""
    request = urllib.request.Request(
        f"{base_url}/v1/responses",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": "Bearer test", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            status, headers, payload = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        status, headers, payload = err.code, err.headers, err.read()
    return status, headers.get("Content-Type", ""), payload.decode("utf-8")


def assert_usage(usage) -> None:
    """A final response's usage is present and adds up."""
    assert usage is not None
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


# --- the responses.stream helper ------------------------------------------------


def test_stream_helper_yields_exact_events_and_final_response(client: openai.OpenAI) -> None:
    expected_text = echo("hi", 1, 1)
    expected_deltas = ["echo: ", "hi ", "[turn ", "1, ", "1 ", "messages ", "in ", "context]"]
    assert pieces(expected_text) == expected_deltas  # the helper agrees with the documented example

    with client.responses.stream(model=MODEL, input="hi") as stream:
        events = list(stream)
        final = stream.get_final_response()

    assert [e.type for e in events] == expected_types(len(expected_deltas))
    assert deltas_of(events) == expected_deltas
    # The helper's running snapshot after the last delta is the whole text.
    last_delta = [e for e in events if e.type == "response.output_text.delta"][-1]
    assert last_delta.snapshot == expected_text

    assert final.output_text == expected_text
    assert final.status == "completed"
    assert final.id.startswith("resp_"), final.id
    assert final.id == events[0].response.id
    assert final.previous_response_id is None
    assert final.store is True
    assert len(final.output) == 1
    assert final.output[0].type == "message"
    assert final.output[0].status == "completed"
    assert final.output[0].id.startswith("msg_"), final.output[0].id
    assert_usage(final.usage)


# --- raw create(stream=True) ------------------------------------------------------


def test_create_stream_sequence_ids_and_stored_snapshot(client: openai.OpenAI) -> None:
    events = create_stream(client, "hi")
    deltas = pieces(echo("hi", 1, 1))

    assert [e.type for e in events] == expected_types(len(deltas))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert deltas_of(events) == deltas

    lifecycle = [e for e in events if e.type in LIFECYCLE]
    assert [e.type for e in lifecycle] == ["response.created", "response.in_progress", "response.completed"]
    response_id = lifecycle[0].response.id
    assert response_id.startswith("resp_"), response_id
    assert {e.response.id for e in lifecycle} == {response_id}

    created = events[0].response
    assert created.status == "in_progress"
    assert created.output == []
    assert created.usage is None

    added = events[2]
    assert added.output_index == 0
    assert added.item.type == "message"
    assert added.item.role == "assistant"
    assert added.item.status == "in_progress"
    assert added.item.content == []
    message_id = added.item.id
    assert message_id.startswith("msg_"), message_id

    part_added = events[3]
    assert part_added.item_id == message_id
    assert (part_added.part.type, part_added.part.text) == ("output_text", "")

    item_events = [e for e in events if e.type not in LIFECYCLE and e.type != "response.output_item.added"]
    assert {e.item_id for e in item_events if hasattr(e, "item_id")} == {message_id}
    text_done, part_done, item_done = events[-4], events[-3], events[-2]
    assert text_done.text == echo("hi", 1, 1)
    assert part_done.part.text == echo("hi", 1, 1)
    assert item_done.item.id == message_id
    assert item_done.item.status == "completed"
    assert item_done.item.content[0].text == echo("hi", 1, 1)

    completed = events[-1].response
    assert completed.status == "completed"
    assert completed.output_text == echo("hi", 1, 1)
    assert completed.output[0].id == message_id
    assert_usage(completed.usage)

    # The store holds exactly the snapshot carried by response.completed.
    stored = client.responses.retrieve(response_id)
    assert completed.model_dump() == stored.model_dump()


# --- chaining from streamed responses ---------------------------------------------


def test_chain_continues_from_streamed_responses(client: openai.OpenAI) -> None:
    first = create_stream(client, "hi")[-1].response
    assert first.output_text == echo("hi", 1, 1)

    # Streamed continuation, started right after the first stream ended.
    with client.responses.stream(model=MODEL, input="more", previous_response_id=first.id) as stream:
        streamed_events = list(stream)
        streamed = stream.get_final_response()
    assert deltas_of(streamed_events) == pieces(echo("more", 2, 3))
    assert streamed.output_text == echo("more", 2, 3)
    assert streamed.previous_response_id == first.id
    assert streamed.status == "completed"

    # Non-streamed continuation of the same streamed parent: a sibling branch.
    plain = client.responses.create(model=MODEL, input="more", previous_response_id=first.id)
    assert plain.output_text == echo("more", 2, 3)
    assert plain.previous_response_id == first.id
    assert plain.id != streamed.id

    # One level deeper, streamed and not, from the streamed continuation.
    third = create_stream(client, "again", streamed.id)[-1]
    assert third.type == "response.completed"
    assert third.response.output_text == echo("again", 3, 5)
    assert third.response.previous_response_id == streamed.id
    deeper = client.responses.create(model=MODEL, input="again", previous_response_id=streamed.id)
    assert deeper.output_text == echo("again", 3, 5)


# --- replaying a stored response ---------------------------------------------------


def test_retrieve_stream_replays_the_original_events(client: openai.OpenAI) -> None:
    original = create_stream(client, "replay me")
    response_id = original[0].response.id
    expected = summary(original)
    assert [t for t, _, _ in expected] == expected_types(len(pieces(echo("replay me", 1, 1))))

    with client.responses.retrieve(response_id, stream=True) as stream:
        replay = list(stream)
    assert summary(replay) == expected
    assert {e.response.id for e in replay if e.type in LIFECYCLE} == {response_id}
    assert replay[-1].response.output_text == echo("replay me", 1, 1)

    with client.responses.retrieve(response_id, stream=True, starting_after=5) as stream:
        tail = list(stream)
    assert summary(tail) == [event for event in expected if event[1] > 5]
    assert tail[0].sequence_number == 6

    # The SDK helper fetches the replay from seq 0 and rebuilds the final response.
    with client.responses.stream(response_id=response_id) as stream:
        helper_events = list(stream)
        final = stream.get_final_response()
    assert summary(helper_events) == expected
    assert final.id == response_id
    assert final.output_text == original[-1].response.output_text == echo("replay me", 1, 1)

    # With starting_after the helper still replays everything but yields only the tail.
    with client.responses.stream(response_id=response_id, starting_after=5) as stream:
        helper_tail = list(stream)
        assert stream.get_final_response().output_text == echo("replay me", 1, 1)
    assert summary(helper_tail) == [event for event in expected if event[1] > 5]


# --- a stream cut by max_output_tokens ------------------------------------------------


def test_stream_cut_by_max_output_tokens(client: openai.OpenAI) -> None:
    assert len(LONG_INPUT.split()) == 20
    full = echo(LONG_INPUT, 1, 1)
    cut = " ".join(full.split()[:16])
    assert cut == "echo: " + " ".join(LONG_INPUT.split()[:15])

    events = create_stream(client, LONG_INPUT, max_output_tokens=16)
    assert [e.type for e in events] == expected_types(len(pieces(cut)), "response.incomplete")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert deltas_of(events) == pieces(cut)
    assert events[-4].text == cut  # response.output_text.done
    assert events[-2].item.status == "incomplete"  # response.output_item.done

    last = events[-1]
    assert last.type == "response.incomplete"
    assert last.response.status == "incomplete"
    assert last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "max_output_tokens"
    assert last.response.max_output_tokens == 16
    assert last.response.output_text == cut
    assert_usage(last.response.usage)

    stored = client.responses.retrieve(last.response.id)
    assert stored.status == "incomplete"
    assert stored.incomplete_details.reason == "max_output_tokens"
    assert stored.output_text == cut

    # The cut turn is stored like any other: the chain continues from it.
    nxt = client.responses.create(model=MODEL, input="next", previous_response_id=last.response.id)
    assert nxt.output_text == echo("next", 2, 3)
    assert nxt.status == "completed"
    streamed_next = create_stream(client, "next", last.response.id)[-1]
    assert streamed_next.type == "response.completed"
    assert streamed_next.response.output_text == echo("next", 2, 3)


# --- the wire format ---------------------------------------------------------------------


def test_sse_framing_on_the_wire(base_url: str) -> None:
    status, content_type, body = raw_stream(base_url, {"model": MODEL, "input": "wire", "stream": True})
    assert status == 200
    assert content_type.startswith("text/event-stream"), content_type

    assert body.endswith("\n\n"), body[-80:]
    frames = body[: -len("\n\n")].split("\n\n")
    assert frames[-1] == "data: [DONE]"

    payloads = []
    for frame in frames[:-1]:
        match = re.fullmatch(r"event: ([^\n]+)\ndata: ([^\n]+)", frame)
        assert match is not None, frame
        name, payload = match.group(1), json.loads(match.group(2))
        assert payload["type"] == name
        payloads.append(payload)

    deltas = pieces(echo("wire", 1, 1))
    assert [p["type"] for p in payloads] == expected_types(len(deltas))
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    assert [p["delta"] for p in payloads if p["type"] == "response.output_text.delta"] == deltas
    assert len({p["response"]["id"] for p in payloads if "response" in p}) == 1


# --- errors before streaming starts ---------------------------------------------------------


def test_unknown_previous_response_id_fails_before_streaming(client: openai.OpenAI, base_url: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(
            model=MODEL, input="x", stream=True, previous_response_id="resp_unknown"
        )
    assert info.value.status_code == 400
    assert info.value.code == "previous_response_not_found"
    assert info.value.param == "previous_response_id"
    assert info.value.body["message"] == "Previous response with id 'resp_unknown' not found."

    # The stream helper raises the same error on entering the context.
    with pytest.raises(openai.BadRequestError) as info:
        with client.responses.stream(model=MODEL, input="x", previous_response_id="resp_unknown"):
            pass
    assert info.value.code == "previous_response_not_found"

    # On the wire it is a plain JSON error, not an event stream.
    status, content_type, body = raw_stream(
        base_url,
        {"model": MODEL, "input": "x", "stream": True, "previous_response_id": "resp_unknown"},
    )
    assert status == 400
    assert content_type.startswith("application/json"), content_type
    assert json.loads(body)["error"]["code"] == "previous_response_not_found"


# --- chat completions streaming ---------------------------------------------------------------


def test_chat_completions_stream_pass_through(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hey"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk.id for chunk in chunks}) == 1
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == echo("hey", 1, 1)
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices]
    assert [reason for reason in finishes if reason is not None] == ["stop"]

    usage = chunks[-1].usage
    assert usage is not None
    assert chunks[-1].choices == []
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
