//! The body and headers of `POST /mcp` as the OpenAPI document describes them. The SDK reads the body (so that its
//! refusals keep their wording): these types only describe it.

#![allow(dead_code)] // Read only by the document's generator.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A JSON-RPC 2.0 message as `/mcp` takes it: a request (with `id`) or a notification. The SDK reads it (so that
/// its refusals keep their wording); an unknown `method` is answered in JSON-RPC, with an error object.
#[derive(ToSchema)]
pub struct JsonRpcMessage {
    #[schema(inline)]
    jsonrpc: Version,
    /// The request's id; absent in a notification.
    #[schema(required = false)]
    id: IdOf,
    method: String,
    /// The method's parameters.
    #[schema(value_type = Option<Object>)]
    params: Option<Value>,
}

/// `2.0`.
#[derive(Serialize, ToSchema)]
pub enum Version {
    #[serde(rename = "2.0")]
    V2,
}

/// The `Accept` header `/mcp` needs.
#[derive(Serialize, ToSchema)]
pub enum AcceptBoth {
    #[serde(rename = "application/json, text/event-stream")]
    JsonAndEventStream,
}

/// A JSON-RPC id: a number or a string.
#[derive(Serialize, ToSchema)]
#[schema(as = JsonRpcId)]
#[serde(untagged)]
pub enum IdOf {
    Number(i64),
    Text(String),
}
