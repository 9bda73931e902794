"""End-to-end tests of threadline through the official OpenAI Python SDK.

The server runs with the built-in ``echo`` upstream, which answers every
upstream request with ``echo: <last user text> [turn N, M messages in context]``
(N = user messages, M = all messages, including a system message for
``instructions``). Exact expected strings therefore show precisely which
history the server rebuilt from ``previous_response_id``.
"""

from __future__ import annotations

from typing import Any, Optional

import openai
import pytest

from wire import echo, raw

MODEL = "echo"


def create(client: openai.OpenAI, text: Any, previous: Optional[str] = None, **kwargs: Any):
    """``responses.create`` with the echo model, optionally continuing ``previous``."""
    if previous is not None:
        kwargs["previous_response_id"] = previous
    return client.responses.create(model=MODEL, input=text, **kwargs)


def texts(items) -> list[str]:
    """The first text part of each listed input message."""
    return [item.content[0].text for item in items]


def assert_completed(resp, previous: Optional[str]) -> None:
    """Checks shared by every successful, stored, non-streamed response."""
    assert resp.id.startswith("resp_"), resp.id
    assert resp.object == "response"
    assert resp.status == "completed"
    assert resp.previous_response_id == previous
    assert resp.store is True
    assert len(resp.output) == 1
    message = resp.output[0]
    assert message.type == "message"
    assert message.id.startswith("msg_"), message.id
    assert message.role == "assistant"
    assert message.content[0].type == "output_text"
    assert resp.usage is not None
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens


def assert_previous_not_found(err: openai.BadRequestError, missing_id: str) -> None:
    """The 400 error for a previous_response_id that is unknown, deleted or unstored."""
    assert err.status_code == 400
    assert err.code == "previous_response_not_found"
    assert err.param == "previous_response_id"
    assert err.type == "invalid_request_error"
    assert isinstance(err.body, dict)
    assert err.body["message"] == f"Previous response with id '{missing_id}' not found."


# --- chaining -------------------------------------------------------------


def test_three_turn_chain(client: openai.OpenAI) -> None:
    r1 = create(client, "a")
    assert r1.output_text == echo("a", 1, 1)
    assert_completed(r1, previous=None)

    r2 = create(client, "b", r1.id)
    assert r2.output_text == echo("b", 2, 3)
    assert_completed(r2, previous=r1.id)

    r3 = create(client, "c", r2.id)
    assert r3.output_text == echo("c", 3, 5)
    assert_completed(r3, previous=r2.id)

    assert len({r1.id, r2.id, r3.id}) == 3
    assert len({r.output[0].id for r in (r1, r2, r3)}) == 3


def test_branches_do_not_see_each_other(client: openai.OpenAI) -> None:
    root = create(client, "root")
    left = create(client, "left", root.id)
    right = create(client, "right", root.id)
    # Both continuations see only root + its answer + their own input.
    assert left.output_text == echo("left", 2, 3)
    assert right.output_text == echo("right", 2, 3)
    assert right.previous_response_id == root.id

    # One level deeper the branches are still independent of each other.
    assert create(client, "right2", right.id).output_text == echo("right2", 3, 5)
    assert create(client, "left2", left.id).output_text == echo("left2", 3, 5)


def test_instructions_are_not_carried_over(client: openai.OpenAI) -> None:
    r1 = create(client, "x")
    assert r1.instructions is None

    r2 = create(client, "y", r1.id, instructions="Be terse.")
    assert r2.output_text == echo("y", 2, 4)  # system + x + answer + y
    assert r2.instructions == "Be terse."

    r3 = create(client, "z", r2.id)
    assert r3.output_text == echo("z", 3, 5)  # the system message is gone
    assert r3.instructions is None


def test_instructions_on_first_turn_only(client: openai.OpenAI) -> None:
    r1 = create(client, "p", instructions="You are a test.")
    assert r1.output_text == echo("p", 1, 2)
    r2 = create(client, "q", r1.id)
    assert r2.output_text == echo("q", 2, 3)


def test_input_array_of_messages_counts_every_turn(client: openai.OpenAI) -> None:
    resp = create(
        client,
        [
            {"role": "user", "content": "u1"},
            {"role": "assistant", "content": "a1"},
            {"role": "user", "content": "u2"},
        ],
    )
    assert resp.output_text == echo("u2", 2, 3)
    assert create(client, "u3", resp.id).output_text == echo("u3", 3, 5)


# --- retrieve --------------------------------------------------------------


def test_retrieve_matches_create(client: openai.OpenAI) -> None:
    first = create(client, "one")
    created = create(client, "two", first.id, metadata={"k": "v"})
    assert created.metadata == {"k": "v"}

    got = client.responses.retrieve(created.id)
    assert got.id == created.id
    assert got.object == "response"
    assert got.status == "completed"
    assert got.output_text == created.output_text == echo("two", 2, 3)
    assert got.previous_response_id == first.id
    assert got.metadata == {"k": "v"}
    assert got.output[0].id == created.output[0].id
    assert got.store is True


def test_retrieve_unknown_id_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.retrieve("resp_doesnotexist0000000000000000")
    assert info.value.status_code == 404


# --- input items -------------------------------------------------------------


def test_input_items_pagination_and_order(client: openai.OpenAI) -> None:
    resp = create(client, [{"role": "user", "content": f"m{i}"} for i in range(1, 6)])
    assert resp.output_text == echo("m5", 5, 5)

    page = client.responses.input_items.list(resp.id, limit=2)
    assert len(page.data) == 2
    assert page.has_more is True
    assert texts(page.data) == ["m5", "m4"]  # default order is desc

    desc = list(page)  # auto-pages with after=<last id>
    assert texts(desc) == ["m5", "m4", "m3", "m2", "m1"]
    for item in desc:
        assert item.type == "message"
        assert item.role == "user"
        assert item.id.startswith("msg_"), item.id
        assert item.content[0].type == "input_text"
    assert len({item.id for item in desc}) == 5

    asc = list(client.responses.input_items.list(resp.id, limit=2, order="asc"))
    assert texts(asc) == ["m1", "m2", "m3", "m4", "m5"]
    assert [item.id for item in asc] == [item.id for item in reversed(desc)]

    # An explicit cursor continues after the given item.
    after = client.responses.input_items.list(resp.id, after=desc[1].id, order="desc")
    assert texts(after.data) == ["m3", "m2", "m1"]
    assert after.has_more is False


def test_string_input_lists_as_one_input_text_message(client: openai.OpenAI, base_url: str) -> None:
    resp = create(client, "hi")
    page = client.responses.input_items.list(resp.id)
    assert len(page.data) == 1
    assert page.has_more is False
    item = page.data[0]
    assert item.type == "message"
    assert item.role == "user"
    assert item.id.startswith("msg_"), item.id
    assert [(part.type, part.text) for part in item.content] == [("input_text", "hi")]

    # On the wire: the list envelope and the normalised content, exactly.
    status, body = raw(base_url, "GET", f"/v1/responses/{resp.id}/input_items")
    assert status == 200
    assert body["object"] == "list"
    assert body["has_more"] is False
    assert body["first_id"] == body["last_id"] == item.id
    assert body["data"][0]["content"] == [{"type": "input_text", "text": "hi"}]


# --- delete --------------------------------------------------------------------


def test_delete_then_retrieve_and_continue(client: openai.OpenAI) -> None:
    a = create(client, "a")
    b = create(client, "b", a.id)
    c = create(client, "c", b.id)
    assert c.output_text == echo("c", 3, 5)

    assert client.responses.delete(b.id) is None

    with pytest.raises(openai.NotFoundError) as info:
        client.responses.retrieve(b.id)
    assert info.value.status_code == 404

    with pytest.raises(openai.BadRequestError) as info:
        create(client, "b2", b.id)
    assert_previous_not_found(info.value, b.id)

    # The descendant survives; its rebuilt history no longer holds b's turn
    # (b's user + assistant messages): a, A, c, C, d = 5 messages, 3 user turns.
    d = create(client, "d", c.id)
    assert d.output_text == echo("d", 3, 5)
    assert client.responses.retrieve(c.id).output_text == echo("c", 3, 5)

    # Deleting a deleted response is a 404 as well.
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(b.id)


def test_delete_unknown_id_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.delete("resp_doesnotexist0000000000000000")
    assert info.value.status_code == 404


# --- store=false -------------------------------------------------------------


def test_store_false_is_not_persisted(client: openai.OpenAI) -> None:
    resp = create(client, "s", store=False)
    assert resp.id.startswith("resp_")
    assert resp.status == "completed"
    assert resp.store is False
    assert resp.output_text == echo("s", 1, 1)

    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(resp.id)

    with pytest.raises(openai.BadRequestError) as info:
        create(client, "again", resp.id)
    assert_previous_not_found(info.value, resp.id)


def test_store_false_can_continue_a_stored_chain(client: openai.OpenAI) -> None:
    stored = create(client, "kept")
    ephemeral = create(client, "gone", stored.id, store=False)
    assert ephemeral.output_text == echo("gone", 2, 3)
    assert ephemeral.store is False
    assert ephemeral.previous_response_id == stored.id
    # The stored parent is untouched by the unstored child.
    assert create(client, "next", stored.id).output_text == echo("next", 2, 3)


# --- errors ----------------------------------------------------------------------


def test_max_output_tokens_below_minimum(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        create(client, "x", max_output_tokens=5)
    assert info.value.status_code == 400
    assert info.value.code == "integer_below_min_value"
    assert info.value.param == "max_output_tokens"


def test_unknown_parameter(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        create(client, "x", extra_body={"bogus": 1})
    assert info.value.status_code == 400
    assert info.value.code == "unknown_parameter"
    assert info.value.param == "bogus"
    assert info.value.body["message"] == "Unknown parameter: 'bogus'."


def test_unknown_previous_response_id(client: openai.OpenAI) -> None:
    missing = "resp_doesnotexist0000000000000000"
    with pytest.raises(openai.BadRequestError) as info:
        create(client, "x", missing)
    assert_previous_not_found(info.value, missing)


def test_missing_model_on_the_wire(base_url: str) -> None:
    status, body = raw(base_url, "POST", "/v1/responses", {"input": "x"})
    assert status == 400
    assert body["error"]["code"] == "missing_required_parameter"
    assert body["error"]["param"] == "model"


# --- models and chat completions ----------------------------------------------------


def test_models_list_contains_echo(client: openai.OpenAI) -> None:
    ids = [model.id for model in client.models.list()]
    assert "echo" in ids


def test_chat_completions_pass_through(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hey"}]
    )
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == echo("hey", 1, 1)


def test_chat_completions_are_stateless(client: openai.OpenAI) -> None:
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
    ]
    completion = client.chat.completions.create(model=MODEL, messages=messages)
    assert completion.choices[0].message.content == echo("q2", 2, 4)
    # Nothing was remembered from the previous call.
    again = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "q3"}])
    assert again.choices[0].message.content == echo("q3", 1, 1)
