//! The Response object with the full key set of the Responses API (reference §2).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::Item;

/// Up to 16 string pairs the client attaches to an object.
pub type Metadata = BTreeMap<String, String>;

/// The lifecycle state of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResponseStatus {
    Completed,
    Failed,
    InProgress,
    Cancelled,
    Queued,
    Incomplete,
}

impl ResponseStatus {
    /// The wire name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::InProgress => "in_progress",
            Self::Cancelled => "cancelled",
            Self::Queued => "queued",
            Self::Incomplete => "incomplete",
        }
    }

    /// Whether a response in this status has reached its end.
    pub fn is_finished(self) -> bool {
        !matches!(self, Self::Queued | Self::InProgress)
    }

    /// The status a wire name names.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Completed, Self::Failed, Self::InProgress, Self::Cancelled, Self::Queued, Self::Incomplete]
            .into_iter()
            .find(|status| status.as_str() == name)
    }
}

/// `error` of a failed response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResponseError {
    pub code: String,
    pub message: String,
}

/// Why a response stopped early.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IncompleteDetails {
    pub reason: String,
}

/// `reasoning` as echoed on the response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReasoningConfig {
    pub effort: Option<String>,
    pub summary: Option<String>,
}

/// `text` as echoed on the response: the output format and verbosity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TextConfig {
    pub format: Value,
    pub verbosity: String,
}

impl Default for TextConfig {
    fn default() -> Self {
        Self { format: serde_json::json!({"type": "text"}), verbosity: "medium".into() }
    }
}

/// Token usage of a response; `total_tokens = input_tokens + output_tokens`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    pub input_tokens: u64,
    pub input_tokens_details: InputTokensDetails,
    pub output_tokens: u64,
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: u64,
}

impl Usage {
    /// Usage from the input, output, cached and reasoning counts.
    pub fn new(input: u64, output: u64, cached: u64, reasoning: u64) -> Self {
        Self {
            input_tokens: input,
            input_tokens_details: InputTokensDetails { cached_tokens: cached, cache_write_tokens: 0 },
            output_tokens: output,
            output_tokens_details: OutputTokensDetails { reasoning_tokens: reasoning },
            total_tokens: input + output,
        }
    }
}

/// Cached part of the input tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InputTokensDetails {
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
}

/// Reasoning part of the output tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OutputTokensDetails {
    pub reasoning_tokens: u64,
}

/// A response: one turn of a conversation, as returned by create and retrieve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Response {
    pub id: String,
    pub object: String,
    pub created_at: i64,
    pub status: ResponseStatus,
    pub background: bool,
    pub completed_at: Option<i64>,
    pub error: Option<ResponseError>,
    pub frequency_penalty: f64,
    pub incomplete_details: Option<IncompleteDetails>,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u64>,
    pub max_tool_calls: Option<u64>,
    pub model: String,
    pub moderation: Option<Value>,
    pub output: Vec<Item>,
    pub parallel_tool_calls: bool,
    pub presence_penalty: f64,
    pub previous_response_id: Option<String>,
    pub prompt_cache_key: Option<String>,
    pub prompt_cache_retention: Option<String>,
    pub reasoning: ReasoningConfig,
    pub safety_identifier: Option<String>,
    pub service_tier: String,
    pub store: bool,
    pub temperature: f64,
    pub text: TextConfig,
    pub tool_choice: Value,
    pub tools: Vec<Value>,
    pub top_logprobs: u64,
    pub top_p: f64,
    pub truncation: String,
    pub usage: Option<Usage>,
    pub user: Option<String>,
    #[schema(inline)]
    pub metadata: Metadata,
    /// The conversation this response was added to, when one was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<super::ConversationRef>,
}

impl Response {
    /// Whether it has reached its end (completed, failed, incomplete or cancelled).
    pub fn is_finished(&self) -> bool {
        self.status.is_finished()
    }

    /// The response as it looked when it was accepted to run in the background: queued, no output or outcome.
    pub fn queued(&self) -> Response {
        Response { status: ResponseStatus::Queued, ..self.in_progress() }
    }

    /// The response as it looked when it started: in progress, with no output, usage or outcome.
    pub fn in_progress(&self) -> Response {
        Response {
            status: ResponseStatus::InProgress,
            completed_at: None,
            error: None,
            incomplete_details: None,
            output: Vec::new(),
            usage: None,
            ..self.clone()
        }
    }
}
