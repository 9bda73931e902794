"""End-to-end tests of the Conversations API through the official OpenAI Python SDK.

Most tests use the echo server (``client``), whose upstream answers
``echo: <last user text> [turn N, M messages in context]`` (N = user messages,
M = all messages sent upstream): the exact echo text shows which conversation
items were used as history. The function-call round trip inside a conversation
uses the mock-upstream server (``scripted_client`` + ``mock``), whose recorded
upstream bodies show the rebuilt messages.

Covered here: conversation create / retrieve / update / delete; items create,
list (pagination, both orders, empty), retrieve and delete, and a duplicate
item id; ``responses.create(conversation=...)`` as a string and as ``{id}``,
non-streamed and streamed, appending each turn's input and output to the
conversation; and the errors for ``conversation`` with
``previous_response_id`` and for an unknown conversation.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest

from wire import echo, raw

from mock_upstream import MockUpstream

MODEL = "echo"


def user_item(text: str) -> dict[str, Any]:
    """A user message item with string content."""
    return {"type": "message", "role": "user", "content": text}


def summary(items) -> list[tuple[str, str]]:
    """(role, first text) of each listed message item."""
    return [(item.role, item.content[0].text) for item in items]


def items_asc(client: openai.OpenAI, conversation_id: str) -> list:
    """Every item of the conversation, oldest first (auto-paged)."""
    return list(client.conversations.items.list(conversation_id, order="asc"))


def assert_conversation_not_found(err: openai.NotFoundError, conversation_id: str) -> None:
    assert err.status_code == 404
    assert isinstance(err.body, dict)
    assert err.body["message"] == f"Conversation with id '{conversation_id}' not found."


# --- the conversation object -----------------------------------------------------------


def test_create_retrieve_update_delete(client: openai.OpenAI) -> None:
    conv = client.conversations.create(items=[user_item("hi")], metadata={"k": "v"})
    assert conv.id.startswith("conv_"), conv.id
    assert conv.object == "conversation"
    assert isinstance(conv.created_at, int)
    assert conv.metadata == {"k": "v"}

    got = client.conversations.retrieve(conv.id)
    assert got.model_dump() == conv.model_dump()

    updated = client.conversations.update(conv.id, metadata={"a": "b"})
    assert updated.id == conv.id
    assert updated.object == "conversation"
    assert updated.created_at == conv.created_at
    assert updated.metadata == {"a": "b"}
    assert client.conversations.retrieve(conv.id).metadata == {"a": "b"}

    deleted = client.conversations.delete(conv.id)
    assert deleted.id == conv.id
    assert deleted.object == "conversation.deleted"
    assert deleted.deleted is True

    with pytest.raises(openai.NotFoundError) as info:
        client.conversations.retrieve(conv.id)
    assert_conversation_not_found(info.value, conv.id)
    with pytest.raises(openai.NotFoundError) as info:
        client.conversations.delete(conv.id)
    assert_conversation_not_found(info.value, conv.id)


def test_two_conversations_get_distinct_ids(client: openai.OpenAI) -> None:
    first, second = client.conversations.create(), client.conversations.create()
    assert first.id != second.id
    assert first.metadata == {}


def test_empty_conversation_lists_no_items(client: openai.OpenAI, base_url: str) -> None:
    conv = client.conversations.create()
    assert list(client.conversations.items.list(conv.id)) == []

    status, body = raw(base_url, "GET", f"/v1/conversations/{conv.id}/items")
    assert status == 200
    assert body == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


# --- items ------------------------------------------------------------------------------


def test_items_create_list_retrieve_delete(client: openai.OpenAI, base_url: str) -> None:
    conv = client.conversations.create()

    created = client.conversations.items.create(
        conv.id, items=[user_item("one"), user_item("two"), user_item("three")]
    )
    assert created.object == "list"
    assert summary(created.data) == [("user", "one"), ("user", "two"), ("user", "three")]
    ids = [item.id for item in created.data]
    assert all(item_id.startswith("msg_") for item_id in ids), ids
    assert len(set(ids)) == 3
    assert created.first_id == ids[0]
    assert created.last_id == ids[-1]
    assert created.has_more is False
    for item in created.data:
        assert item.type == "message"
        assert [part.type for part in item.content] == ["input_text"]

    # On the wire the string content is normalised to one input_text part.
    status, body = raw(base_url, "GET", f"/v1/conversations/{conv.id}/items?order=asc")
    assert status == 200
    assert [item["content"] for item in body["data"]] == [
        [{"type": "input_text", "text": text}] for text in ("one", "two", "three")
    ]

    # Pages of two, newest first by default; the SDK follows last_id.
    page = client.conversations.items.list(conv.id, limit=2)
    assert [item.id for item in page.data] == [ids[2], ids[1]]
    assert page.has_more is True
    assert [item.id for item in page] == [ids[2], ids[1], ids[0]]
    assert [item.id for item in client.conversations.items.list(conv.id, limit=2, order="asc")] == ids

    item = client.conversations.items.retrieve(ids[1], conversation_id=conv.id)
    assert item.id == ids[1]
    assert summary([item]) == [("user", "two")]

    after_delete = client.conversations.items.delete(ids[1], conversation_id=conv.id)
    assert after_delete.object == "conversation"
    assert after_delete.id == conv.id
    assert [item.id for item in items_asc(client, conv.id)] == [ids[0], ids[2]]
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(ids[1], conversation_id=conv.id)


def test_after_a_deleted_item_is_not_found(client: openai.OpenAI) -> None:
    conv = client.conversations.create(items=[user_item("one"), user_item("two")])
    first, second = items_asc(client, conv.id)
    client.conversations.items.delete(first.id, conversation_id=conv.id)

    with pytest.raises(openai.NotFoundError) as info:
        client.conversations.items.list(conv.id, after=first.id)
    assert info.value.param == "after"
    assert info.value.body["message"] == f"No item found with id '{first.id}'."
    # A live cursor still works.
    assert list(client.conversations.items.list(conv.id, after=second.id)) == []


def test_items_create_appends_to_initial_items(client: openai.OpenAI) -> None:
    conv = client.conversations.create(items=[user_item("first")])
    client.conversations.items.create(conv.id, items=[user_item("second")])
    assert summary(items_asc(client, conv.id)) == [("user", "first"), ("user", "second")]


def test_adding_an_item_id_already_present_is_rejected(client: openai.OpenAI) -> None:
    conv = client.conversations.create(items=[user_item("one")])
    (existing,) = items_asc(client, conv.id)

    with pytest.raises(openai.BadRequestError) as info:
        client.conversations.items.create(
            conv.id,
            items=[
                {
                    "type": "message",
                    "id": existing.id,
                    "role": "user",
                    "content": [{"type": "input_text", "text": "one"}],
                }
            ],
        )
    assert info.value.status_code == 400
    assert info.value.code == "item_already_in_conversation"
    assert info.value.param == "items"
    assert [item.id for item in items_asc(client, conv.id)] == [existing.id]


def test_items_of_an_unknown_conversation(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.conversations.items.list("conv_nope")
    assert_conversation_not_found(info.value, "conv_nope")
    with pytest.raises(openai.NotFoundError) as info:
        client.conversations.items.create("conv_nope", items=[user_item("x")])
    assert_conversation_not_found(info.value, "conv_nope")


# --- responses in a conversation ----------------------------------------------------------


def test_responses_use_and_extend_the_conversation(client: openai.OpenAI) -> None:
    conv = client.conversations.create(items=[user_item("hi")])

    first = client.responses.create(model=MODEL, input="hello", conversation=conv.id)
    assert first.output_text == echo("hello", 2, 2)
    assert first.status == "completed"
    assert first.conversation is not None
    assert first.conversation.id == conv.id
    assert first.previous_response_id is None
    assert client.responses.retrieve(first.id).conversation.id == conv.id

    items = items_asc(client, conv.id)
    assert summary(items) == [("user", "hi"), ("user", "hello"), ("assistant", echo("hello", 2, 2))]
    assert items[2].id == first.output[0].id  # the output message itself joined the conversation
    assert items[2].content[0].type == "output_text"
    assert items[1].content[0].type == "input_text"

    second = client.responses.create(model=MODEL, input="again", conversation=conv.id)
    assert second.output_text == echo("again", 3, 4)
    assert second.conversation.id == conv.id
    assert summary(items_asc(client, conv.id)) == [
        ("user", "hi"),
        ("user", "hello"),
        ("assistant", echo("hello", 2, 2)),
        ("user", "again"),
        ("assistant", echo("again", 3, 4)),
    ]


def test_deleted_items_leave_the_history(client: openai.OpenAI) -> None:
    conv = client.conversations.create(items=[user_item("one"), user_item("two"), user_item("three")])
    two = items_asc(client, conv.id)[1]
    client.conversations.items.delete(two.id, conversation_id=conv.id)

    resp = client.responses.create(model=MODEL, input="four", conversation=conv.id)
    assert resp.output_text == echo("four", 3, 3)  # one, three, four


def test_instructions_are_not_stored_in_the_conversation(client: openai.OpenAI) -> None:
    conv = client.conversations.create(items=[user_item("hi")])
    first = client.responses.create(model=MODEL, input="hello", instructions="Be terse.", conversation=conv.id)
    assert first.output_text == echo("hello", 2, 3)  # system + hi + hello
    assert first.instructions == "Be terse."

    second = client.responses.create(model=MODEL, input="again", conversation=conv.id)
    assert second.output_text == echo("again", 3, 4)  # hi, hello, answer, again: no system message
    assert [role for role, _ in summary(items_asc(client, conv.id))] == [
        "user",
        "user",
        "assistant",
        "user",
        "assistant",
    ]


def test_conversation_given_as_an_object(client: openai.OpenAI) -> None:
    conv = client.conversations.create(items=[user_item("hi")])
    resp = client.responses.create(model=MODEL, input="hello", conversation={"id": conv.id})
    assert resp.output_text == echo("hello", 2, 2)
    assert resp.conversation.id == conv.id
    assert len(items_asc(client, conv.id)) == 3


def test_streamed_responses_in_a_conversation(client: openai.OpenAI) -> None:
    conv = client.conversations.create(items=[user_item("hi")])

    with client.responses.create(model=MODEL, input="hello", conversation=conv.id, stream=True) as stream:
        events = list(stream)
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == echo("hello", 2, 2)
    assert completed.response.conversation.id == conv.id
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == echo("hello", 2, 2)
    assert summary(items_asc(client, conv.id)) == [
        ("user", "hi"),
        ("user", "hello"),
        ("assistant", echo("hello", 2, 2)),
    ]

    # The stream helper, continuing the same conversation.
    with client.responses.stream(model=MODEL, input="again", conversation={"id": conv.id}) as helper:
        list(helper)
        final = helper.get_final_response()
    assert final.output_text == echo("again", 3, 4)
    assert final.conversation.id == conv.id
    assert len(items_asc(client, conv.id)) == 5


def test_function_call_round_trip_in_a_conversation(
    scripted_client: openai.OpenAI, mock: MockUpstream
) -> None:
    question = "What is the weather in Paris?"
    tool = {
        "type": "function",
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    mock.script(
        {"content": None, "tool_calls": [{"id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'}]},
        {"content": "21 degrees."},
    )
    conv = scripted_client.conversations.create()

    first = scripted_client.responses.create(model="mock-model", input=question, conversation=conv.id, tools=[tool])
    assert [item.type for item in first.output] == ["function_call"]
    second = scripted_client.responses.create(
        model="mock-model",
        input=[{"type": "function_call_output", "call_id": "call_1", "output": '{"temp":21}'}],
        conversation=conv.id,
        tools=[tool],
    )
    assert second.output_text == "21 degrees."

    assert mock.requests[1]["messages"] == [
        {"role": "user", "content": question},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp":21}'},
    ]

    items = items_asc(scripted_client, conv.id)
    assert [item.type for item in items] == ["message", "function_call", "function_call_output", "message"]
    assert items[1].id == first.output[0].id
    assert (items[1].call_id, items[1].name, items[1].arguments) == ("call_1", "get_weather", '{"city":"Paris"}')
    assert (items[2].call_id, items[2].output) == ("call_1", '{"temp":21}')
    assert items[3].id == second.output[0].id


# --- errors ----------------------------------------------------------------------------------


def test_conversation_and_previous_response_id_are_exclusive(client: openai.OpenAI) -> None:
    conv = client.conversations.create(items=[user_item("hi")])
    previous = client.responses.create(model=MODEL, input="x")

    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input="y", conversation=conv.id, previous_response_id=previous.id)
    assert info.value.status_code == 400
    assert info.value.code == "mutually_exclusive_parameters"
    assert info.value.type == "invalid_request_error"
    assert summary(items_asc(client, conv.id)) == [("user", "hi")]  # nothing was added


def test_unknown_conversation_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model=MODEL, input="x", conversation="conv_nope")
    assert_conversation_not_found(info.value, "conv_nope")

    with pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model=MODEL, input="x", conversation="conv_nope", stream=True)
    assert_conversation_not_found(info.value, "conv_nope")

    with pytest.raises(openai.NotFoundError) as info:
        client.conversations.retrieve("conv_nope")
    assert_conversation_not_found(info.value, "conv_nope")
