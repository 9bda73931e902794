"""Background responses through the official SDK: ``background=True`` answers at once with a queued response;
``responses.retrieve`` polls it to its end, or streams it live and resumes it (``starting_after``);
``responses.cancel`` stops a running one (idempotently) and refuses a foreground one."""

from __future__ import annotations

import time

import openai
import pytest

from mock_upstream import MockUpstream
from wire import echo

MODEL = "echo"
TERMINAL = {"completed", "failed", "incomplete", "cancelled"}


def wait_until_finished(client: openai.OpenAI, response_id: str, timeout: float = 30.0):
    """The SDK's documented background loop: retrieve until the status is terminal."""
    deadline = time.monotonic() + timeout
    response = client.responses.retrieve(response_id)
    while response.status not in TERMINAL:
        assert time.monotonic() < deadline, f"{response_id} still {response.status}"
        time.sleep(0.05)
        response = client.responses.retrieve(response_id)
    return response


def test_background_create_then_retrieve_until_completed(client: openai.OpenAI) -> None:
    queued = client.responses.create(model=MODEL, input="in the background", background=True)
    assert queued.status == "queued"
    assert queued.background is True
    assert queued.output == []
    assert queued.usage is None
    done = wait_until_finished(client, queued.id)
    assert done.status == "completed"
    assert done.background is True
    assert done.output_text == echo("in the background", 1, 1)
    assert done.usage is not None and done.usage.output_tokens > 0
    # It continues like any stored response.
    later = client.responses.create(model=MODEL, input="and then", previous_response_id=done.id)
    assert later.output_text == echo("and then", 2, 3)


def test_background_stream_and_resume(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model=MODEL, input="stream me", background=True, stream=True))
    types = [event.type for event in events]
    assert types[:3] == ["response.created", "response.queued", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    response_id = events[0].response.id
    assert events[0].response.status == "queued"
    resumed = list(client.responses.retrieve(response_id, stream=True, starting_after=2))
    assert [event.model_dump() for event in resumed] == [event.model_dump() for event in events[3:]]


def test_cancel_a_running_background_response(scripted_client: openai.OpenAI, mock: MockUpstream) -> None:
    mock.script({"content": "a long answer that never ends", "hold": True})
    try:
        queued = scripted_client.responses.create(model="mock-model", input="go on", background=True)
        stream = scripted_client.responses.retrieve(queued.id, stream=True)
        for event in stream:
            if event.type == "response.output_text.delta":
                break
        cancelled = scripted_client.responses.cancel(queued.id)
        assert cancelled.status == "cancelled"
        assert cancelled.output[0].status == "incomplete"
        assert cancelled.output_text == "a long answer that never ends"[: len(cancelled.output_text)]
        assert scripted_client.responses.cancel(queued.id) == cancelled
        assert scripted_client.responses.retrieve(queued.id) == cancelled
        assert len(mock.requests) == 1
    finally:
        mock.release()


def test_cancel_refuses_a_foreground_response(client: openai.OpenAI) -> None:
    response = client.responses.create(model=MODEL, input="right now")
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.cancel(response.id)
    assert raised.value.status_code == 400
    assert raised.value.body["message"] == (
        f"Only responses created with background=true can be cancelled; '{response.id}' was not."
    )
    with pytest.raises(openai.NotFoundError):
        client.responses.cancel("resp_0000000000000000000000000000dead")


def test_background_needs_store(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model=MODEL, input="x", background=True, store=False)
    assert raised.value.body["param"] == "background"
