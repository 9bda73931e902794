"""Every surface and upstream kind in front of llama.cpp's own server: a compaction whose summary the real model
writes, token counts against the backend's own, function-call history through a real chat template, LM Studio's
``/api/v1/chat``, the ``responses`` upstream kind on llama-server's ``/v1/responses``, and the stateless
pass-through."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Callable

import openai

from conftest import MODEL, WINDOW, LlamaServer, said

REPLY = 24
SUMMARY = re.compile(r"Summary of the earlier conversation:\n(.+?)<\|im_end\|>", re.S)


def say(word: str) -> str:
    return f"Remember the word {word}. Reply with one short sentence."


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as answer:
        return json.loads(answer.read())


def test_a_compaction_is_written_by_the_real_model_and_stands_for_the_turns_it_replaces(
    client: openai.OpenAI, llama: LlamaServer
) -> None:
    previous = None
    for word in ("apple", "river", "candle"):
        previous = client.responses.create(model=MODEL, input=say(word), previous_response_id=previous,
                                           max_output_tokens=REPLY, temperature=0).id
    mark = llama.mark()
    compacting = client.responses.create(
        model=MODEL, previous_response_id=previous, max_output_tokens=REPLY, temperature=0,
        input=[{"role": "user", "content": say("violin")}, {"type": "compaction_trigger"}])
    assert compacting.status in ("completed", "incomplete")
    assert compacting.output[0].type == "compaction"
    summarizing, answering = llama.prompts_since(mark)
    # The model was asked to summarize the turns, and the answer was given the summary in their place.
    assert "You are compacting a conversation" in summarizing and say("apple") in summarizing
    summary = SUMMARY.search(answering).group(1).strip()
    assert summary and said(say("apple")) not in answering and said(say("violin")) in answering
    # The next turn builds on the same summary.
    mark = llama.mark()
    client.responses.create(model=MODEL, input=say("garden"), previous_response_id=compacting.id,
                            max_output_tokens=REPLY, temperature=0)
    [following] = llama.prompts_since(mark)
    assert SUMMARY.search(following).group(1).strip() == summary
    assert said(say("apple")) not in following and said(say("violin")) in following


def test_input_tokens_comes_to_the_backends_own_count_once_it_has_reported_one(client: openai.OpenAI) -> None:
    previous = None
    word = iter(["apple", "river", "candle", "mountain", "violin", "garden", "rocket", "pencil", "harbor", "lantern"])
    # threadline learns how the backend counts from a turn whose context fills at least half the window by its own
    # count (the backend's count, which adds the template's tokens, is higher); until then it counts with its own
    # tokenizer.
    while True:
        text = say(next(word))
        counted = client.responses.input_tokens.count(model=MODEL, input=text, previous_response_id=previous)
        response = client.responses.create(model=MODEL, input=text, previous_response_id=previous,
                                           max_output_tokens=REPLY, temperature=0)
        previous = response.id
        backend = response.usage.input_tokens
        print(f"threadline counted {counted.input_tokens}, llama.cpp {backend}")
        if counted.input_tokens > WINDOW / 2:
            break
    # From then on the count is in the backend's tokens, within a tenth.
    text = say(next(word))
    counted = client.responses.input_tokens.count(model=MODEL, input=text, previous_response_id=previous)
    response = client.responses.create(model=MODEL, input=text, previous_response_id=previous,
                                       max_output_tokens=REPLY, temperature=0)
    backend = response.usage.input_tokens
    print(f"calibrated: threadline counted {counted.input_tokens}, llama.cpp {backend}")
    assert abs(counted.input_tokens - backend) <= 0.1 * backend


def test_function_call_history_reaches_the_model_through_its_chat_template(
    client: openai.OpenAI, llama: LlamaServer
) -> None:
    tool = {"type": "function", "name": "get_weather", "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    mark = llama.mark()
    first = client.responses.create(model=MODEL, tools=[tool], max_output_tokens=REPLY, temperature=0, input=[
        {"role": "user", "content": "What is the weather in Paris?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21 degrees"},
    ])
    second = client.responses.create(model=MODEL, tools=[tool], previous_response_id=first.id,
                                     input="And tomorrow?", max_output_tokens=REPLY, temperature=0)
    assert second.status in ("completed", "incomplete")
    prompts = llama.prompts_since(mark)
    for prompt in prompts:
        assert '"name": "get_weather"' in prompt  # the tool, offered
        assert re.search(r'<tool_call>\n\{"name": "get_weather", "arguments": \{"city": ?"Paris"\}\}\n</tool_call>',
                         prompt), prompt
        assert "<tool_response>\nsunny, 21 degrees\n</tool_response>" in prompt
    assert "And tomorrow?" in prompts[-1]


def test_lm_studio_chat_keeps_the_conversation(base_url: str, llama: LlamaServer) -> None:
    first = post(f"{base_url}/api/v1/chat", {"model": MODEL, "input": say("apple"), "max_output_tokens": REPLY,
                                             "temperature": 0})
    answer = first["output"][-1]["content"]
    assert first["response_id"].startswith("resp_") and answer
    mark = llama.mark()
    second = post(f"{base_url}/api/v1/chat", {"model": MODEL, "input": say("river"), "max_output_tokens": REPLY,
                                              "temperature": 0, "previous_response_id": first["response_id"]})
    assert second["output"][-1]["type"] == "message"
    [prompt] = llama.prompts_since(mark)
    assert prompt.index(said(say("apple"))) < prompt.index(answer) < prompt.index(said(say("river")))
    assert second["stats"]["input_tokens"] > 0


def test_the_responses_upstream_kind_on_llama_servers_own_responses_api(
    start_threadline: Callable[..., str], llama: LlamaServer
) -> None:
    base_url = start_threadline('[[upstreams]]\nname = "llama-responses"\nkind = "responses"\n'
                                'base_url = "{llama}/v1"\n')
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=300.0)
    first = client.responses.create(model=MODEL, input=say("apple"), max_output_tokens=REPLY, temperature=0)
    assert first.output_text
    mark = llama.mark()
    events = list(client.responses.create(model=MODEL, input=say("river"), previous_response_id=first.id,
                                          max_output_tokens=REPLY, temperature=0, stream=True))
    assert events[-1].type in ("response.completed", "response.incomplete")
    [prompt] = llama.prompts_since(mark)
    assert prompt.index(said(say("apple"))) < prompt.index(first.output_text.strip()) < prompt.index(said(say("river")))
    client.close()


def test_the_stateless_pass_through(client: openai.OpenAI, base_url: str) -> None:
    completion = client.chat.completions.create(model=MODEL, max_tokens=REPLY, temperature=0,
                                                messages=[{"role": "user", "content": "Say hello."}])
    assert completion.choices[0].message.content and completion.usage.prompt_tokens > 0
    streamed = client.chat.completions.create(model=MODEL, max_tokens=REPLY, temperature=0, stream=True,
                                              messages=[{"role": "user", "content": "Say hello."}])
    text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
    assert text == completion.choices[0].message.content
    with urllib.request.urlopen(f"{base_url}/v1/models", timeout=30) as answer:
        listed = json.loads(answer.read())
    [model] = [model for model in listed["data"] if model["id"] == MODEL]
    assert model["meta"]["n_ctx"] == WINDOW
