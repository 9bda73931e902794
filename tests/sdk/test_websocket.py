"""WebSocket mode through the official SDK's ``client.responses.connect()``: responses one after another on one
socket, a ``store=False`` response continued from the socket's cache, and an unknown id answered with an error event
on a socket that stays usable."""

from __future__ import annotations

from typing import Any

import openai

from wire import echo

MODEL = "echo"
ENDS = ("response.completed", "response.failed", "response.incomplete")


def run(connection: Any, **fields: Any) -> list[Any]:
    """Sends one ``response.create`` and returns its events up to its end (or up to an ``error`` event)."""
    connection.response.create(**fields)
    events = []
    for event in connection:
        events.append(event)
        if event.type in ENDS or event.type == "error":
            return events
    raise AssertionError(f"the socket closed after {[event.type for event in events]}")


def test_responses_on_one_socket_continue_from_its_cache(client: openai.OpenAI) -> None:
    with client.responses.connect() as connection:
        first = run(connection, model=MODEL, input="Hi, I am Ada.", store=False)
        types = [event.type for event in first]
        assert types[:2] == ["response.created", "response.in_progress"]
        assert types[-1] == "response.completed"
        assert [event.sequence_number for event in first] == list(range(len(first)))
        first_id = first[-1].response.id
        # Not stored: continued from the socket's memory, with the whole history.
        second = run(connection, model=MODEL, input="What is my name?", previous_response_id=first_id, store=False)
        assert second[0].sequence_number == 0
        assert second[-1].response.output_text == echo("What is my name?", 2, 3)
    # Nothing was stored.
    try:
        client.responses.retrieve(first_id)
        raise AssertionError("a store=False response was stored")
    except openai.NotFoundError:
        pass


def test_an_unknown_id_is_an_error_event_and_the_socket_goes_on(client: openai.OpenAI) -> None:
    with client.responses.connect() as connection:
        failed = run(connection, model=MODEL, input="x", previous_response_id="resp_0000000000000000000000000000dead")
        assert failed[-1].type == "error"
        assert failed[-1].error.code == "previous_response_not_found"
        fresh = run(connection, model=MODEL, input="start again")
        assert fresh[-1].type == "response.completed"
        assert fresh[-1].response.output_text == echo("start again", 1, 1)
