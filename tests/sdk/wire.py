"""Helpers shared by the end-to-end tests: the echo model's reply, and raw HTTP requests that bypass the SDK."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def echo(text: str, turn: int, messages: int) -> str:
    """The echo upstream's reply for a context with the given counts."""
    return f"echo: {text} [turn {turn}, {messages} messages in context]"


def raw(base_url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """Send a raw HTTP request (bypassing the SDK); return (status, parsed JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{base_url}{path}",
        data=data,
        method=method,
        headers={"Authorization": "Bearer test", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            status, payload = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, payload = err.code, err.read()
    return status, json.loads(payload) if payload else None
