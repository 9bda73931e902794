"""The OpenAPI document at ``/openapi.json`` is a valid OpenAPI 3.1 document (checked by openapi-spec-validator,
which also resolves every ``$ref``), and a response the server returns validates against its ``Response`` schema."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import jsonschema
from openapi_spec_validator import OpenAPIV31SpecValidator


def fetch(url: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.status == 200
        return json.load(resp)


def test_the_document_is_valid_openapi_3_1(base_url: str) -> None:
    document = fetch(f"{base_url}/openapi.json")
    assert document["openapi"] == "3.1.0"
    errors = [error.message for error in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []


def test_a_created_response_matches_its_schema(base_url: str) -> None:
    document = fetch(f"{base_url}/openapi.json")
    response = fetch(f"{base_url}/v1/responses", {"model": "echo", "input": "hello", "metadata": {"k": "v"}})
    # The component schemas are JSON Schema 2020-12: validate against Response with the document as its root.
    schema = {"$ref": "#/components/schemas/Response", "components": document["components"]}
    jsonschema.Draft202012Validator(schema).validate(response)
