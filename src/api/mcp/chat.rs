//! `stateful_chat`: one turn on the engine path of `POST /v1/responses`, stored and chained like any other, and its
//! result (`content`, `response_id`, `status`, `model`, `usage`, `stored_until`, and `reasoning` when asked for).

use serde_json::{json, Value};

use super::tools::StatefulChat;
use super::{Failure, Server};
use crate::api::auth::Caller;
use crate::api::ids;
use crate::api::input::{system_text, user_text};
use crate::engine::{ContextOptions, EngineError, Truncation, TurnRequest};
use crate::model::{Item, Metadata, Response, ResponseStatus};
use crate::upstream::Parameters;

/// The note of a result whose `system_prompt` was not used.
pub const SYSTEM_PROMPT_IGNORED: &str =
    "system_prompt was ignored: it is only used when starting a conversation (without response_id); the \
     conversation keeps the one it started with.";

impl Server {
    /// Runs the turn `args` asks for, as `caller`.
    pub(super) async fn stateful_chat(
        &self,
        args: StatefulChat,
        caller: Caller,
        request_id: String,
    ) -> Result<Value, Failure> {
        let ignored = args.response_id.is_some() && args.system_prompt.is_some();
        let include_reasoning = args.include_reasoning;
        let turn = self.turn(args, caller, request_id)?;
        let response = self.engine.respond(turn).await?;
        if response.status == ResponseStatus::Failed {
            let message = response.error.as_ref().map_or("The model failed.", |error| error.message.as_str());
            return Err(Failure(format!("The turn failed: {message}")));
        }
        let mut result = self.result(&response, include_reasoning);
        if ignored {
            result["note"] = json!(SYSTEM_PROMPT_IGNORED);
        }
        Ok(result)
    }

    /// The turn request of `args`: what `POST /v1/responses` builds for the same input, with `system_prompt` as a
    /// system message of the first turn, kept with the conversation (as LM Studio's `/api/v1/chat` does).
    fn turn(&self, args: StatefulChat, caller: Caller, request_id: String) -> Result<TurnRequest, Failure> {
        let model = args.model.or_else(|| self.default_model.clone()).ok_or_else(|| {
            Failure("Invalid arguments: 'model' is required, as the server has no mcp.default_model.".into())
        })?;
        if model.is_empty() {
            return Err(Failure("Invalid arguments: 'model' must not be empty.".into()));
        }
        if args.prompt.is_empty() {
            return Err(Failure("Invalid arguments: 'prompt' must not be empty.".into()));
        }
        if args.temperature.is_some_and(|temperature| !(0.0..=2.0).contains(&temperature)) {
            return Err(Failure("Invalid arguments: 'temperature' must be between 0 and 2.".into()));
        }
        if args.max_tokens == Some(0) {
            return Err(Failure("Invalid arguments: 'max_tokens' must be at least 1.".into()));
        }
        ids::known_if_some(args.response_id.as_deref(), EngineError::PreviousResponseNotFound)?;
        let mut input = vec![user_text(args.prompt)];
        if let Some(prompt) = args.system_prompt.filter(|_| args.response_id.is_none()) {
            input.insert(0, system_text(prompt));
        }
        let parameters = Parameters {
            temperature: args.temperature,
            max_output_tokens: args.max_tokens.map(u64::from),
            ..Parameters::default()
        };
        Ok(TurnRequest {
            tenant: caller.tenant,
            model,
            input,
            instructions: None,
            previous_response_id: args.response_id,
            store: true,
            metadata: Metadata::new(),
            parameters,
            conversation: None,
            request_id: Some(request_id),
            upstream_key: caller.upstream_key,
            truncation: Truncation::Disabled,
            context: ContextOptions::default(),
            background: false,
            local: None,
        })
    }

    /// The structured result of a finished turn.
    fn result(&self, response: &Response, include_reasoning: bool) -> Value {
        let content = texts(response, |item| matches!(item, Item::Message(_)));
        let mut result = json!({
            "content": content,
            "response_id": response.id,
            "status": response.status,
            "model": response.model,
            "usage": response.usage,
            "stored_until": self.stored_until(response.created_at),
        });
        let reasoning = texts(response, |item| matches!(item, Item::Reasoning(_)));
        if include_reasoning && !reasoning.is_empty() {
            result["reasoning"] = json!(reasoning);
        }
        result
    }
}

/// The text of the output items `pick` selects, joined (a reasoning item's text, else its summary).
pub(super) fn texts(response: &Response, pick: impl Fn(&Item) -> bool) -> String {
    let text = |item: &Item| match item {
        Item::Reasoning(reasoning) if reasoning.content.is_empty() => {
            let summary = reasoning.summary.iter().filter_map(|part| part["text"].as_str());
            summary.collect::<Vec<_>>().join("\n")
        }
        _ => item.text(),
    };
    let texts: Vec<String> = response.output.iter().filter(|item| pick(item)).map(text).collect();
    texts.into_iter().filter(|text| !text.is_empty()).collect::<Vec<_>>().join("\n")
}
