"""End-to-end tests of ``include`` through the official OpenAI SDK, against the scriptable mock backend.

``include=["message.output_text.logprobs"]`` with ``top_logprobs`` asks the backend for log probabilities and
shows them on the output text (plain, streamed with each delta, and on retrieve); ``include=
["reasoning.encrypted_content"]`` shows reasoning items sealed by threadline, which a stateless client
(``store=False``) sends back with the next input.
"""

from __future__ import annotations

from typing import Any

import openai

from mock_upstream import MockUpstream

MODEL = "mock-model"
LOGPROBS = "message.output_text.logprobs"
ENCRYPTED = "reasoning.encrypted_content"


def entry(token: str, logprob: float, *top: tuple[str, float]) -> dict[str, Any]:
    """A token's log probability as Chat Completions gives it."""
    alternatives = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in top]
    return {"token": token, "logprob": logprob, "bytes": list(token.encode()), "top_logprobs": alternatives}


TOKENS = [entry("Hi", -0.25, ("Hi", -0.25), ("Hello", -1.5)), entry(" there", -0.5, (" there", -0.5), ("!", -2.0))]


def shown(logprobs) -> list[tuple[str, float, list[tuple[str, float]]]]:
    """Log probabilities as (token, logprob, [(alternative, logprob)])."""
    return [(lp.token, lp.logprob, [(top.token, top.logprob) for top in lp.top_logprobs]) for lp in logprobs]


EXPECTED = [("Hi", -0.25, [("Hi", -0.25), ("Hello", -1.5)]), (" there", -0.5, [(" there", -0.5), ("!", -2.0)])]


def test_logprobs_plain_streamed_and_retrieved(scripted_client: openai.OpenAI, mock: MockUpstream) -> None:
    reply = {"content": "Hi there", "logprobs": TOKENS}
    mock.script(reply, reply)
    resp = scripted_client.responses.create(model=MODEL, input="hi", include=[LOGPROBS], top_logprobs=2)
    body = mock.requests[-1]
    assert (body["logprobs"], body["top_logprobs"]) == (True, 2)
    assert resp.top_logprobs == 2
    part = resp.output[0].content[0]
    assert part.text == "Hi there"
    assert shown(part.logprobs) == EXPECTED
    assert [lp.bytes for lp in part.logprobs] == [list(b"Hi"), list(b" there")]
    assert scripted_client.responses.retrieve(resp.id).output[0].content[0].logprobs == part.logprobs

    with scripted_client.responses.stream(model=MODEL, input="hi", include=[LOGPROBS], top_logprobs=2) as stream:
        deltas = [(event.delta, shown(event.logprobs)) for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas == [("Hi", EXPECTED[:1]), (" there", EXPECTED[1:])]
    assert final.output[0].content[0].logprobs == part.logprobs
    assert mock.requests[-1]["stream"] is True and mock.requests[-1]["logprobs"] is True


def test_without_the_include_no_logprobs(scripted_client: openai.OpenAI, mock: MockUpstream) -> None:
    mock.script({"content": "Hi there", "logprobs": TOKENS})
    resp = scripted_client.responses.create(model=MODEL, input="hi")
    assert "logprobs" not in mock.requests[-1]
    assert resp.output[0].content[0].logprobs == []


def test_encrypted_reasoning_round_trips_without_store(scripted_client: openai.OpenAI, mock: MockUpstream) -> None:
    mock.script({"content": "Four.", "reasoning": "2+2 is 4."}, {"content": "Eight."}, {"content": "Ok."})
    first = scripted_client.responses.create(model=MODEL, input="2+2?", store=False, include=[ENCRYPTED])
    reasoning = first.output[0]
    assert reasoning.type == "reasoning"
    assert reasoning.content[0].text == "2+2 is 4."
    assert reasoning.encrypted_content.startswith("tl1.") and "2+2" not in reasoning.encrypted_content

    # The stateless loop: the previous output goes back with the next message (the reasoning without its text:
    # the sealed blob carries it). Reasoning is not sent to a Chat Completions backend.
    resent = [item.model_dump(exclude_none=True) for item in first.output]
    resent[0]["content"] = []
    second = scripted_client.responses.create(
        model=MODEL, input=[*resent, {"role": "user", "content": "and 4+4?"}], store=False, include=[ENCRYPTED]
    )
    assert second.output_text == "Eight."
    assert mock.requests[-1]["messages"] == [
        {"role": "assistant", "content": "Four."},
        {"role": "user", "content": "and 4+4?"},
    ]

    # A blob threadline did not seal is kept as given: no error.
    resent[0]["encrypted_content"] = "a-backend-blob"
    third = scripted_client.responses.create(model=MODEL, input=[*resent, {"role": "user", "content": "ok?"}], store=False)
    assert third.output_text == "Ok."
    assert third.status == "completed"
