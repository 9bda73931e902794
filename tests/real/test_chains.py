"""Long chains in front of llama.cpp's own server: truncation ``auto`` keeps a 20+-turn chain going in a 512-token
window, fitted to the window llama-server enforces and to its own token count; streaming; branches."""

from __future__ import annotations

import re

import openai

from conftest import MODEL, WINDOW, LlamaServer

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
        assert say(word) in answered
        if n > 1:
            assert say(WORDS[n - 2]) in answered
        previous = response.id
        print(f"turn {n}: {len(prompts)} request(s), backend counted {response.usage.input_tokens} input tokens")
    # By the end the oldest turns were dropped: the first word is long gone from what the model sees.
    assert say(WORDS[0]) not in answered
    kept = [word for word in WORDS if say(word) in answered]
    assert kept == WORDS[-len(kept):]
    print(f"the last turn kept {len(kept)} turns; requests per turn: {requests_per_turn}")
