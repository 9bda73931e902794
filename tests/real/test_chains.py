"""Long chains in front of llama.cpp's own server: truncation ``auto`` keeps a 20+-turn chain going in a 512-token
window, fitted to the window llama-server enforces and to its own token count; streaming; branches."""

from __future__ import annotations

import re

import openai

from conftest import MODEL, WINDOW, LlamaServer, said

WORDS = ["apple", "river", "candle", "mountain", "violin", "garden", "rocket", "pencil", "island", "thunder",
         "lemon", "castle", "forest", "mirror", "bicycle", "ocean", "planet", "wizard", "anchor", "meadow",
         "saddle", "comet", "harbor", "tulip"]


REPLY = 24


def say(word: str) -> str:
    return f"Remember the word {word}. Reply with one short sentence."


def test_a_chain_of_24_turns_with_truncation_auto_keeps_going_and_drops_its_oldest_turns(
    client: openai.OpenAI, llama: LlamaServer
) -> None:
    previous = None
    requests_per_turn = []
    for n, word in enumerate(WORDS, start=1):
        mark = llama.mark()
        response = client.responses.create(model=MODEL, input=say(word), previous_response_id=previous,
                                           truncation="auto", max_output_tokens=REPLY, temperature=0)
        # Never failed, never cut short by the window: at most by the reply's own limit.
        assert response.status == "completed" or response.incomplete_details.reason == "max_output_tokens", response
        # The reply kept its share of the window, in the backend's own count.
        assert response.usage.input_tokens + REPLY <= WINDOW
        prompts = llama.prompts_since(mark)
        requests_per_turn.append(len(prompts))
        answered = prompts[-1]
        # The turn's own input, and its parent's, always reach the model.
        assert said(say(word)) in answered
        if n > 1:
            assert said(say(WORDS[n - 2])) in answered
        previous = response.id
        print(f"turn {n}: {len(prompts)} request(s), backend counted {response.usage.input_tokens} input tokens")
    # By the end the oldest turns were dropped: the first word is long gone from what the model sees.
    assert said(say(WORDS[0])) not in answered
    kept = [word for word in WORDS if said(say(word)) in answered]
    assert kept == WORDS[-len(kept):]
    print(f"the last turn kept {len(kept)} turns; requests per turn: {requests_per_turn}")


def test_a_streamed_turn_continues_the_chain_and_replays_as_stored(client: openai.OpenAI, llama: LlamaServer) -> None:
    first = client.responses.create(model=MODEL, input=say("apple"), max_output_tokens=REPLY, temperature=0)
    mark = llama.mark()
    events = list(client.responses.create(model=MODEL, input=say("river"), previous_response_id=first.id,
                                          max_output_tokens=REPLY, temperature=0, stream=True))
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert "response.output_text.delta" in kinds
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    final = events[-1].response
    assert final.output_text == text and text
    assert {event.response.id for event in events if hasattr(event, "response")} == {final.id}
    # The model saw the first turn (its input and its answer) before the new input.
    [prompt] = llama.prompts_since(mark)
    assert prompt.index(said(say("apple"))) < prompt.index(first.output_text) < prompt.index(said(say("river")))
    # Stored as streamed, and the chain goes on from it.
    assert client.responses.retrieve(final.id).output_text == text


def test_two_branches_from_one_turn_each_see_the_shared_history_and_only_their_own_input(
    client: openai.OpenAI, llama: LlamaServer
) -> None:
    root = client.responses.create(model=MODEL, input=say("candle"), max_output_tokens=REPLY, temperature=0)
    seen = {}
    for word in ("violin", "garden"):
        mark = llama.mark()
        client.responses.create(model=MODEL, input=say(word), previous_response_id=root.id,
                                max_output_tokens=REPLY, temperature=0)
        [seen[word]] = llama.prompts_since(mark)
    assert said(say("candle")) in seen["violin"] and said(say("candle")) in seen["garden"]
    assert said(say("garden")) not in seen["violin"] and said(say("violin")) not in seen["garden"]


def test_without_truncation_a_chain_past_the_window_is_a_clear_400_with_the_numbers(
    client: openai.OpenAI, llama: LlamaServer
) -> None:
    # Counted here: llama-server reports its window (meta.n_ctx), and the context is plainly too long.
    mark = llama.mark()
    try:
        client.responses.create(model=MODEL, input="hello world " * 400, max_output_tokens=REPLY)
        raise AssertionError("a context past the window was accepted")
    except openai.BadRequestError as err:
        assert err.status_code == 400 and err.code == "context_length_exceeded" and err.param == "input"
        assert re.fullmatch(r"Your input exceeds the context window of this model: it is \d+ tokens, and \d+ fit "
                            rf"\(the window is {WINDOW} tokens, {REPLY} kept for the output\)\. Please adjust your "
                            r"input and try again\.", err.body["message"]), err.body
    assert llama.prompts_since(mark) == []
    # Counted by the backend: text that llama.cpp's tokenizer splits far finer than threadline's fits here, and the
    # backend's own numbers come back.
    try:
        client.responses.create(model=MODEL, input="東京都の天気は晴れです。" * 30, max_output_tokens=REPLY)
        raise AssertionError("a context past the window was accepted")
    except openai.BadRequestError as err:
        assert err.code == "context_length_exceeded"
        match = re.fullmatch(r"Your input exceeds the context window of this model: the backend counted (\d+) "
                             rf"tokens, and its context window is {WINDOW} tokens\. Please adjust your input and try "
                             r"again\.", err.body["message"])
        assert match and int(match.group(1)) >= WINDOW, err.body
    assert len(llama.prompts_since(mark)) == 1
