"""End-to-end tests of input items a client sends back, through the official SDK, against the mock backend.

``item_reference``: an item of the chain being continued, named by its id, is sent upstream as that item and listed
in the new turn's input under a new id; an unknown id is a 400 naming it. The stateless loop of a client without
``store``: each turn sends the whole conversation again — its earlier input, the previous ``response.output`` as the
SDK returned it (reasoning items included), and the new message — and the backend gets every message but the
reasoning, which a Chat Completions backend takes none of.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest

from mock_upstream import MockUpstream

MODEL = "mock-model"


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def test_item_reference_to_an_item_of_the_chain(scripted_client: openai.OpenAI, mock: MockUpstream) -> None:
    mock.script({"content": "Paris."}, {"content": "Paris, again."})
    first = scripted_client.responses.create(model=MODEL, input="What is the capital of France?")
    answer = first.output[0]
    assert answer.type == "message"

    second = scripted_client.responses.create(
        model=MODEL,
        input=[{"type": "item_reference", "id": answer.id}, user("Say it again.")],
        previous_response_id=first.id,
    )
    assert second.output_text == "Paris, again."
    assert mock.requests[-1]["messages"] == [
        user("What is the capital of France?"),
        assistant("Paris."),
        assistant("Paris."),
        user("Say it again."),
    ]
    listed = list(scripted_client.responses.input_items.list(second.id, order="asc"))
    assert [item.type for item in listed] == ["message", "message"]
    copy = listed[0]
    assert copy.id.startswith("msg_") and copy.id != answer.id
    assert copy.model_dump(exclude={"id"}) == answer.model_dump(exclude={"id"})


def test_item_reference_to_an_unknown_item_is_a_400(scripted_client: openai.OpenAI, mock: MockUpstream) -> None:
    first = scripted_client.responses.create(model=MODEL, input="hi")
    mock.clear()
    with pytest.raises(openai.BadRequestError) as raised:
        scripted_client.responses.create(
            model=MODEL, input=[{"type": "item_reference", "id": "msg_unknown"}], previous_response_id=first.id
        )
    assert raised.value.status_code == 400
    assert raised.value.body == {
        "message": "Item with id 'msg_unknown' not found.",
        "type": "invalid_request_error",
        "param": "input",
        "code": None,
    }
    assert mock.requests == []


def test_the_stateless_loop_with_a_reasoning_backend(scripted_client: openai.OpenAI, mock: MockUpstream) -> None:
    mock.script(
        {"reasoning": "Adding two and two.", "content": "4"},
        {"reasoning": "Adding three and three.", "content": "6"},
        {"reasoning": "Adding four and four.", "content": "8"},
    )
    conversation: list[Any] = []
    answers = []
    for question in ["2+2?", "3+3?", "4+4?"]:
        conversation.append(user(question))
        response = scripted_client.responses.create(model=MODEL, input=conversation, store=False)
        assert response.status == "completed"
        assert [item.type for item in response.output] == ["reasoning", "message"]
        answers.append(response.output_text)
        conversation += response.output  # the SDK's output items, sent back as they are
    assert answers == ["4", "6", "8"]
    assert [request["messages"] for request in mock.requests] == [
        [user("2+2?")],
        [user("2+2?"), assistant("4"), user("3+3?")],
        [user("2+2?"), assistant("4"), user("3+3?"), assistant("6"), user("4+4?")],
    ]
    # Nothing was stored: the responses are unknown.
    with pytest.raises(openai.NotFoundError):
        scripted_client.responses.retrieve(response.id)
