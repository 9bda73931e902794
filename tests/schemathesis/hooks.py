"""schemathesis hooks for scripts/schemathesis: the rules the OpenAPI document states in words, which a generator
reading only the schemas cannot know, kept out of the schema-valid (positive) cases. Schema-invalid (negative) cases
are left as generated: each must be refused whatever else it holds."""

from __future__ import annotations

import schemathesis
from schemathesis import GenerationMode


def _positive(case: schemathesis.Case) -> bool:
    meta = case.meta
    return meta is not None and meta.generation.mode == GenerationMode.POSITIVE


@schemathesis.hook
def filter_case(ctx: schemathesis.HookContext, case: schemathesis.Case) -> bool:
    if not _positive(case):
        return True
    query = case.query or {}
    # GET /v1/responses/{id}: `starting_after` only with `stream=true`.
    if "starting_after" in query and query.get("stream") not in (True, "true"):
        return False
    # A reference to a stored response or conversation: a generated id names none (a 400
    # `previous_response_not_found` or a 404, as OpenAI answers).
    body = case.body if isinstance(case.body, dict) else {}
    return body.get("previous_response_id") is None and body.get("conversation") is None
