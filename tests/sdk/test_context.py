"""Long conversations through the official OpenAI Python SDK: counting a request's input tokens, compacting a
conversation into a window that goes back as input, compaction inside a turn, and the context-window error.

The server runs with the built-in ``echo`` upstream, which answers ``echo: <last user text> [turn N, M messages in
context]`` and reports usage counted by the same tokenizer threadline uses.
"""

from __future__ import annotations

import openai
import pytest

MODEL = "echo"


def test_input_tokens_count_is_what_a_create_sends(client: openai.OpenAI) -> None:
    first = client.responses.create(model=MODEL, input="What is in the box?", instructions="Be brief.")
    fields = {"model": MODEL, "input": "And now?", "previous_response_id": first.id, "instructions": "Be brief."}
    counted = client.responses.input_tokens.count(**fields)
    assert counted.object == "response.input_tokens"
    created = client.responses.create(**fields)
    assert created.usage is not None
    assert counted.input_tokens == created.usage.input_tokens
    # Four messages of a few words each, with their framing and the reply priming.
    assert 20 < counted.input_tokens < 60


def test_input_tokens_of_an_unknown_previous_response_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.input_tokens.count(model=MODEL, input="x", previous_response_id="resp_unknown")
    assert raised.value.code == "previous_response_not_found"


def test_a_compacted_window_goes_back_as_input(client: openai.OpenAI) -> None:
    first = client.responses.create(model=MODEL, input="My name is Ada.")
    second = client.responses.create(model=MODEL, input="I like tea.", previous_response_id=first.id)
    raw = client.responses.with_raw_response.compact(model=MODEL, previous_response_id=second.id)
    compacted = raw.parse()
    assert compacted.object == "response.compaction"
    assert compacted.id.startswith("resp_")
    assert [item.type for item in compacted.output] == ["message", "message", "compaction"]
    kept = [item.content[0].text for item in compacted.output[:2]]
    assert kept == ["My name is Ada.", "I like tea."]
    compaction = compacted.output[2]
    assert compaction.id.startswith("cmp_")
    assert compaction.encrypted_content.startswith("tl1.")
    assert "tea" not in compaction.encrypted_content
    assert compacted.usage.total_tokens == compacted.usage.input_tokens + compacted.usage.output_tokens
    # Passed back as it came (the SDK types kept user messages as output messages, so re-serialising them warns).
    window = raw.http_response.json()["output"]
    after = client.responses.create(model=MODEL, input=[*window, {"role": "user", "content": "Who am I?"}])
    # The two kept messages, the summary (sent as a user message) and the new question.
    assert after.output_text == "echo: Who am I? [turn 4, 4 messages in context]"
    items = client.responses.input_items.list(after.id, order="asc")
    assert [item.type for item in items.data] == ["message", "message", "compaction", "message"]


def test_a_forged_compaction_is_refused(client: openai.OpenAI) -> None:
    forged = {"type": "compaction", "encrypted_content": "tl1.bm90IGEgcmVhbCBzdW1tYXJ5IGF0IGFsbA"}
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model=MODEL, input=[forged, {"role": "user", "content": "hi"}])
    assert raised.value.code == "invalid_encrypted_content"
    assert raised.value.param == "input"


def test_context_management_compacts_inside_a_turn(client: openai.OpenAI) -> None:
    managed = [{"type": "compaction", "compact_threshold": 1000}]
    previous = None
    for turn in range(10):
        response = client.responses.create(
            model=MODEL,
            input=f"turn {turn}: " + "apple " * 150,
            previous_response_id=previous,
            context_management=managed,
        )
        if response.output[0].type == "compaction":
            break
        previous = response.id
    else:
        pytest.fail("no compaction past 1000 tokens")
    assert turn >= 2
    assert response.output[0].id.startswith("cmp_")
    assert response.output[1].type == "message"
    # The summary and the turns after it are the context now: far fewer messages than the chain holds.
    assert response.output_text.endswith("messages in context]")
    retrieved = client.responses.retrieve(response.id)
    assert [item.type for item in retrieved.output] == ["compaction", "message"]


def test_a_context_past_the_window_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model=MODEL, input="apple " * 9000)
    assert raised.value.code == "context_length_exceeded"
    assert raised.value.param == "input"
    truncated = client.responses.create(model=MODEL, input="apple " * 100, truncation="auto")
    assert truncated.truncation == "auto"


def test_compacting_only_user_messages_keeps_them_and_calls_no_model(client: openai.OpenAI) -> None:
    compacted = client.responses.compact(model=MODEL, input="Hello there.")
    assert [item.type for item in compacted.output] == ["message", "compaction"]
    assert compacted.output[0].content[0].text == "Hello there."
    assert compacted.usage.total_tokens == 0
