//! The MCP server, with the official Rust SDK (`rmcp`): the tools `stateful_chat`, `get_conversation` and
//! `delete_conversation_turn` on the engine and store every other surface uses, served over Streamable HTTP at
//! `POST /mcp` (stateless, behind the same authentication and per-tenant limits as every caller route) and over
//! stdio by `threadline mcp`.
//!
//! Every failure a caller can cause or meet — bad arguments, unknown or another tenant's ids, upstream errors — is a
//! tool result with `isError` and the message the HTTP surfaces would give, never a protocol error.

mod chat;
pub mod http;
mod schema;
mod tools;
mod turns;

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use chat::SYSTEM_PROMPT_IGNORED;

use super::auth::Caller;
use super::error::ApiError;
use super::extract::caller_of;
use super::request_id::RequestId;
use crate::config::Config;
use crate::engine::{Engine, EngineError};

/// The MCP server: the engine, the model used when a call names none, and how long responses are kept.
#[derive(Clone)]
pub struct Server {
    engine: Arc<Engine>,
    default_model: Option<String>,
    kept: Option<Duration>,
}

/// A tool call that failed: its message, returned as an `isError` result.
#[derive(Debug)]
pub struct Failure(pub String);

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Failure(error.body.message)
    }
}

impl From<EngineError> for Failure {
    fn from(error: EngineError) -> Self {
        ApiError::from(error).into()
    }
}

impl Server {
    pub fn new(engine: Arc<Engine>, config: &Config) -> Self {
        Self { engine, default_model: config.mcp.default_model.clone(), kept: config.retention.responses }
    }

    /// When a response created at `created_at` expires (RFC 3339), unless a later turn continues it; `None` when
    /// responses are kept forever.
    fn stored_until(&self, created_at: i64) -> Option<String> {
        let kept = i64::try_from(self.kept?.as_secs()).ok()?;
        turns::rfc3339(created_at.checked_add(kept)?)
    }

    /// Runs the tool `name` with `arguments`, as `caller`.
    async fn run(&self, name: &str, arguments: Value, caller: Caller, request_id: String) -> Result<Value, Failure> {
        match name {
            "stateful_chat" => self.stateful_chat(parse(arguments)?, caller, request_id).await,
            "get_conversation" => self.get_conversation(parse(arguments)?, &caller.tenant).await,
            "delete_conversation_turn" => self.delete_turn(parse(arguments)?, &caller.tenant).await,
            other => Err(Failure(format!("Unknown tool '{other}'."))),
        }
    }
}

/// A tool's arguments as its type, or the failure naming what is wrong with them.
fn parse<T: DeserializeOwned>(arguments: Value) -> Result<T, Failure> {
    serde_json::from_value(arguments).map_err(|err| Failure(format!("Invalid arguments: {err}.")))
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("threadline", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Hold conversations with other models that this server keeps: call stateful_chat without \
                 response_id to start one, then pass the response_id it returns to continue (or branch from any \
                 earlier turn).",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools::list()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // Over HTTP, the caller authentication named and the request's id; over stdio, the default tenant.
        let parts = context.extensions.get::<axum::http::request::Parts>();
        let caller = caller_of(parts.map(|parts| &parts.extensions).unwrap_or(&Default::default()));
        let request_id = parts.and_then(|parts| parts.extensions.get::<RequestId>()).map(|id| id.0.clone());
        let request_id = request_id.unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let result = match self.run(&request.name, arguments, caller, request_id).await {
            Ok(value) => CallToolResult::structured(value),
            Err(Failure(message)) => CallToolResult::error(vec![ContentBlock::text(message)]),
        };
        Ok(result.into())
    }
}

/// `threadline mcp`: serves the tools over stdin and stdout until the host closes them.
pub async fn serve_stdio(engine: Arc<Engine>, config: &Config) -> anyhow::Result<()> {
    let service = Server::new(engine, config).serve(rmcp::transport::stdio()).await?;
    service.waiting().await?;
    Ok(())
}
