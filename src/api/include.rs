//! `include`: the extras a Responses request asks to be shown — `message.output_text.logprobs` (the log
//! probabilities of the output text) and `reasoning.encrypted_content` (reasoning items sealed, to be sent back
//! without `store`) — read from a create's body, or from the `include[]` query of the endpoints that show items.

use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::fields::{invalid_type, invalid_value, Fields};

const LOGPROBS: &str = "message.output_text.logprobs";
const ENCRYPTED_REASONING: &str = "reasoning.encrypted_content";
/// Values OpenAI takes for what this server never produces (hosted tools, images by file): a clear 400.
const NOT_PRODUCED: [&str; 6] = [
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
];

/// The extras asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Include {
    /// `message.output_text.logprobs`: a create asks the backend for them. Logprobs are stored with the output, so
    /// a read shows what the create returned whether or not it names them.
    pub logprobs: bool,
    /// `reasoning.encrypted_content`: reasoning items show their sealed form.
    pub encrypted_reasoning: bool,
}

impl Include {
    /// The body's `include` array (absent or empty: nothing).
    pub fn from_body(f: &mut Fields) -> ApiResult<Self> {
        let mut include = Self::default();
        for (i, value) in f.array("include")?.unwrap_or_default().into_iter().enumerate() {
            let param = format!("include[{i}]");
            match value {
                Value::String(value) => include.add(&value, &param)?,
                other => return Err(invalid_type(&param, "a string", &other)),
            }
        }
        Ok(include)
    }

    /// The `include[]` (or `include`) query parameters.
    pub fn from_query(values: &[String]) -> ApiResult<Self> {
        let mut include = Self::default();
        for value in values {
            include.add(value, "include")?;
        }
        Ok(include)
    }

    fn add(&mut self, value: &str, param: &str) -> ApiResult<()> {
        match value {
            LOGPROBS => self.logprobs = true,
            ENCRYPTED_REASONING => self.encrypted_reasoning = true,
            other if NOT_PRODUCED.contains(&other) => {
                return Err(ApiError::unsupported(param, &format!("include '{other}'")))
            }
            other => {
                let supported: Vec<&str> = [LOGPROBS, ENCRYPTED_REASONING].into_iter().chain(NOT_PRODUCED).collect();
                return Err(invalid_value(param, other, &supported));
            }
        }
        Ok(())
    }
}
