//! The OpenAPI 3.1 document of every route, served at `GET /openapi.json`: generated from the handlers'
//! `#[utoipa::path]` annotations and the model types' `ToSchema` derives.
//!
//! To document a route: annotate its handler with `#[utoipa::path(METHOD, path = "...", operation_id = "...",
//! tag = "...", params(...), request_body = ..., responses((status = 200, body = ...), Failures))]` (a threadline
//! extension also gets `extensions(("x-threadline-extension" = json!(true)))`), then add the handler to `paths(...)`
//! below. `tests/openapi.rs` fails until every route of the router is documented, and every documented one served.

pub mod bodies;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi};

use super::query::NO_CONTROL_CHARACTERS;
use super::{chat, conversations, health, lmstudio, models, responses};
use crate::api::error::{ErrorBody, ErrorEnvelope, ErrorKind};
use crate::model;

/// The document, assembled from every annotated handler.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "threadline",
        description = "An OpenAI-compatible stateful chat server. Operations marked `x-threadline-extension: true` \
            are threadline's own (not in OpenAI's API); parameters and fields described as \"Threadline extension\" \
            likewise. The `LM Studio` tag is LM Studio's native REST API."
    ),
    paths(
        responses::create,
        responses::socket::connect,
        super::browse::list_conversations,
        super::browse::tree,
        responses::compact,
        responses::input_tokens,
        responses::retrieve,
        responses::delete,
        responses::cancel,
        responses::input_items,
        conversations::create,
        conversations::retrieve,
        conversations::update,
        conversations::delete,
        conversations::add_items,
        conversations::list_items,
        conversations::retrieve_item,
        conversations::delete_item,
        chat::completions,
        models::list,
        lmstudio::chat,
        super::mcp::http::handle,
        health::live,
        health::ready,
        super::metrics,
        document,
    ),
    components(schemas(ErrorEnvelope, ErrorBody, ErrorKind, bodies::LmStudioError, model::Response, model::Item)),
    modifiers(&TaggedStructs, &CallerRoutes),
    tags(
        (name = "Responses", description = "OpenAI's Responses API, stored and chained by threadline."),
        (name = "Conversations", description = "OpenAI's Conversations API."),
        (name = "Chat Completions", description = "OpenAI's Chat Completions API, stateless."),
        (name = "Models", description = "OpenAI's model list."),
        (name = "LM Studio", description = "LM Studio's native stateful chat, on the same store as `/v1/responses`."),
        (name = "MCP", description = "The Model Context Protocol server (threadline's own)."),
        (name = "Operations", description = "Health, readiness, metrics and this document (threadline's own)."),
    )
)]
pub struct ApiDoc;

/// The document as JSON, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| ApiDoc::openapi().to_json().unwrap_or_default());

/// The OpenAPI 3.1 document of every route.
#[utoipa::path(get, path = "/openapi.json", operation_id = "getOpenApi", tag = "Operations", summary = "This document",
    responses((status = 200, description = "This document.", content_type = "application/json")),
    extensions(("x-threadline-extension" = json!(true))))]
pub async fn document() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT.as_str())
}

/// Adds the `type` tag of the structs that serde tags themselves (`#[serde(tag = "type")]` on a struct, which the
/// derive does not read): `ReasoningText`.
struct TaggedStructs;

impl Modify for TaggedStructs {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let schemas = openapi.components.as_mut().map(|components| &mut components.schemas);
        let Some(RefOr::T(Schema::Object(object))) = schemas.and_then(|schemas| schemas.get_mut("ReasoningText"))
        else {
            return;
        };
        let tag = ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["reasoning_text"])).build();
        object.properties.insert("type".into(), tag.into());
        object.required.insert(0, "type".into());
    }
}

/// What every caller route shares (all but the operations routes): the client's key, as `Authorization: Bearer`
/// (also accepted as `x-api-key` or `api-key`), and an admin key's `tenant=`.
struct CallerRoutes;

impl Modify for CallerRoutes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("The client's API key (also accepted in `x-api-key` or `api-key`)."))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("apiKey", SecurityScheme::Http(bearer));
        let tenant = ParameterBuilder::new()
            .name("tenant")
            .parameter_in(ParameterIn::Query)
            .description(Some(
                "Threadline extension, admin keys only: act for this tenant instead of the key's own (any other \
                 caller passing it gets a 403). A tenant name: not empty, no control characters.",
            ))
            .schema(Some(
                ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).pattern(Some(NO_CONTROL_CHARACTERS)),
            ))
            .build();
        for path in super::caller_paths() {
            let Some(item) = openapi.paths.paths.get_mut(path) else { continue };
            let operations = [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                operation.security = Some(vec![SecurityRequirement::new("apiKey", Vec::<String>::new())]);
                operation.parameters.get_or_insert_with(Vec::new).push(tenant.clone());
            }
        }
    }
}

/// The error answers of an OpenAI-shaped route: any 4xx or 5xx, with the `Error` envelope.
pub struct Failures;

impl IntoResponses for Failures {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        error_responses("Error")
    }
}

/// The error answers of LM Studio's route: its own envelope.
pub struct LmStudioFailures;

impl IntoResponses for LmStudioFailures {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        error_responses("LmStudioError")
    }
}

/// `4XX` and `5XX` answers whose body is the schema `name`.
fn error_responses(name: &str) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    let body = ContentBuilder::new().schema(Some(Ref::from_schema_name(name))).build();
    [("4XX", "The request was refused (bad input, unknown id, limits)."), ("5XX", "The server or its upstream failed.")]
        .into_iter()
        .map(|(status, description)| {
            let response = ResponseBuilder::new().description(description).content("application/json", body.clone());
            (status.to_string(), RefOr::T(response.build()))
        })
        .collect()
}
