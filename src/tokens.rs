//! Token counting of what a turn sends upstream: the Chat Completions messages built from Responses-API items, the
//! instructions and the function tool definitions, counted with a tiktoken encoding.
//!
//! Counts follow OpenAI's cookbook recipe for chat messages (`num_tokens_from_messages`): every message is framed as
//! `<|start|>{role}\n{content}<|end|>\n`, which costs 3 tokens besides its role and its content, and every request
//! costs 3 more priming the reply (`<|start|>assistant<|message|>`). Other backends frame messages with their own
//! chat templates and tokenizers, so for them the count is an estimate of the same order, not an exact figure.

use tiktoken_rs::CoreBPE;

use crate::model::{ChatTool, ContentPart, FunctionCall, FunctionTool, Item, Message};

/// Tokens every request adds once (the reply priming, as in OpenAI's counting recipe): 3.
pub const REPLY_PRIMING: u32 = 3;

/// The framing of one message around its role and content.
const MESSAGE_FRAMING: u32 = 3;

/// A role name (`system`, `user`, `assistant`, `tool`) is one token in every encoding.
const ROLE: u32 = 1;

/// The framing of one function call inside the assistant message it joins: the call's entry around its name and
/// arguments. Call ids pair calls with outputs; chat templates do not render them into the prompt.
const CALL_FRAMING: u32 = 3;

/// The framing of one function tool definition around its JSON.
const TOOL_FRAMING: u32 = 3;

/// A tiktoken encoding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// GPT-4o, GPT-4.1, GPT-5 and the o-series.
    #[default]
    O200kBase,
    /// GPT-4 and GPT-3.5-turbo.
    Cl100kBase,
    /// Codex and text-davinci-002/003.
    P50kBase,
    /// GPT-3 (`gpt2`).
    R50kBase,
}

impl Encoding {
    /// Loads the encoder now (it takes a moment), so that the first turn that counts with it does not wait.
    pub fn load(self) {
        self.bpe();
    }

    /// The encoder, loaded on first use and shared by the whole process.
    fn bpe(self) -> &'static CoreBPE {
        match self {
            Encoding::O200kBase => tiktoken_rs::o200k_base_singleton(),
            Encoding::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
            Encoding::P50kBase => tiktoken_rs::p50k_base_singleton(),
            Encoding::R50kBase => tiktoken_rs::r50k_base_singleton(),
        }
    }
}

/// Counts tokens with one encoding; images and files cost a fixed number each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenCounter {
    pub encoding: Encoding,
    /// What one image or file part costs: its real cost depends on the backend (image tiles, extracted file text),
    /// which the text of the request does not tell.
    pub image_tokens: u32,
}

/// What an image or file costs by default: a 1024×1024 image in high detail on OpenAI's vision models.
pub const DEFAULT_IMAGE_TOKENS: u32 = 765;

impl Default for TokenCounter {
    /// `o200k_base`, and the default cost of images.
    fn default() -> Self {
        Self::new(Encoding::default(), DEFAULT_IMAGE_TOKENS)
    }
}

impl TokenCounter {
    pub fn new(encoding: Encoding, image_tokens: u32) -> Self {
        Self { encoding, image_tokens }
    }

    /// Tokens of a plain text. Special-token markers in it (`<|endoftext|>`…) count as the ordinary text they are.
    pub fn text(&self, text: &str) -> u32 {
        saturating_u32(self.encoding.bpe().encode_ordinary(text).len())
    }

    /// Tokens one stored/input item adds to the upstream context, as it is sent: a message is a message of its own;
    /// a function call joins the assistant message before it; an output is a `tool` message; reasoning is not sent.
    /// A compaction's summary is sealed: the engine, which opens it, counts it.
    pub fn item(&self, item: &Item) -> u32 {
        match item {
            Item::Message(message) => self.message_item(message),
            Item::FunctionCall(call) => self.call(call),
            Item::FunctionCallOutput(output) => self.message(&output.output.text()),
            Item::Reasoning(_) | Item::Compaction(_) | Item::ItemReference(_) => 0,
        }
    }

    /// Tokens of a whole message carrying `text` (overhead + text): used for instructions and summaries.
    pub fn message(&self, text: &str) -> u32 {
        (MESSAGE_FRAMING + ROLE).saturating_add(self.text(text))
    }

    /// Tokens the function tool definitions add (their JSON as sent, plus a small fixed overhead each). The JSON
    /// overcounts backends that render tools more compactly (OpenAI's own TypeScript-like form) a little.
    pub fn tools(&self, tools: &[FunctionTool]) -> u32 {
        tools.iter().map(|tool| self.tool(tool)).fold(0, u32::saturating_add)
    }

    /// A message item: its text parts as sent (joined by newlines) and a fixed cost per image or file part.
    fn message_item(&self, message: &Message) -> u32 {
        let attachments = message.content.iter().filter(|part| is_attachment(part)).count();
        let attachment_tokens = saturating_u32(attachments).saturating_mul(self.image_tokens);
        self.message(&message.text()).saturating_add(attachment_tokens)
    }

    /// A function call: its name and arguments inside the call's framing.
    fn call(&self, call: &FunctionCall) -> u32 {
        CALL_FRAMING.saturating_add(self.text(&call.name)).saturating_add(self.text(&call.arguments))
    }

    /// One tool definition: its Chat Completions JSON inside the definition's framing.
    fn tool(&self, tool: &FunctionTool) -> u32 {
        // Serialising borrowed strings and a JSON value cannot fail.
        let json = serde_json::to_string(&ChatTool::function(tool)).unwrap_or_default();
        TOOL_FRAMING.saturating_add(self.text(&json))
    }
}

/// Whether a content part is an image or a file (which cost a fixed number of tokens each).
fn is_attachment(part: &ContentPart) -> bool {
    matches!(part, ContentPart::InputImage { .. } | ContentPart::InputFile { .. })
}

fn saturating_u32(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{FunctionCallOutput, ItemStatus, Reasoning, ReasoningText, Role, ToolOutput};

    fn o200k() -> TokenCounter {
        TokenCounter::new(Encoding::O200kBase, 85)
    }

    fn message(role: Role, content: Vec<ContentPart>) -> Item {
        Item::Message(Message { id: "msg_1".into(), status: ItemStatus::Completed, role, content, phase: None })
    }

    fn input_text(text: &str) -> ContentPart {
        ContentPart::InputText { text: text.into() }
    }

    #[test]
    fn texts_count_exactly_in_each_encoding() {
        let texts = [
            "hello world",
            "",
            "tiktoken is great!",
            "<|endoftext|>",
            "        return x  # indented",
            "Привет, мир! 你好，世界",
            r#"{"city":"Paris"}"#,
        ];
        let counts = |encoding| texts.map(|text| TokenCounter::new(encoding, 0).text(text));
        assert_eq!(counts(Encoding::O200kBase), [2, 0, 6, 7, 7, 9, 5]);
        assert_eq!(counts(Encoding::Cl100kBase), [2, 0, 6, 7, 7, 14, 5]);
        assert_eq!(counts(Encoding::P50kBase), [2, 0, 6, 7, 7, 25, 5]);
        // r50k has no tokens for runs of spaces, which code is full of.
        assert_eq!(counts(Encoding::R50kBase), [2, 0, 6, 7, 13, 25, 5]);
    }

    #[test]
    fn a_message_costs_its_framing_role_and_text() {
        let counter = o200k();
        assert_eq!(counter.message("hello world"), 6);
        assert_eq!(counter.message(""), 4);
        assert_eq!(counter.item(&message(Role::User, vec![input_text("hello world")])), 6);
        assert_eq!(counter.item(&message(Role::Assistant, vec![ContentPart::output_text("hello world")])), 6);
        assert_eq!(counter.item(&message(Role::Developer, vec![input_text("hello world")])), 6);
        // Text parts are sent joined by newlines.
        let parts = vec![input_text("hello"), input_text("world")];
        assert_eq!(counter.item(&message(Role::User, parts)), 4 + counter.text("hello\nworld"));
        assert_eq!(counter.text("hello\nworld"), 3);
        let refusal = ContentPart::Refusal { refusal: "hello world".into() };
        assert_eq!(counter.item(&message(Role::Assistant, vec![refusal])), 6);
        assert_eq!(REPLY_PRIMING, 3);
    }

    #[test]
    fn images_and_files_cost_the_fixed_number_each() {
        let image =
            ContentPart::InputImage { image_url: "data:image/png;base64,iVBORw0KGgo=".into(), detail: "auto".into() };
        let file = ContentPart::InputFile { filename: Some("a.pdf".into()), file_data: "JVBERi0xLjQK".repeat(100) };
        let content = vec![input_text("hello world"), image.clone(), file];
        assert_eq!(o200k().item(&message(Role::User, content.clone())), 6 + 2 * 85);
        assert_eq!(TokenCounter::new(Encoding::O200kBase, 1000).item(&message(Role::User, content)), 6 + 2 * 1000);
        assert_eq!(o200k().item(&message(Role::User, vec![image])), 4 + 85);
    }

    #[test]
    fn reasoning_is_not_sent_so_costs_nothing() {
        let reasoning = Item::Reasoning(Reasoning {
            id: "rs_1".into(),
            summary: Vec::new(),
            content: vec![ReasoningText { text: "Let me think about hello world at length.".into() }],
            encrypted_content: None,
            status: ItemStatus::Completed,
        });
        assert_eq!(o200k().item(&reasoning), 0);
    }

    #[test]
    fn calls_cost_name_and_arguments_and_outputs_a_tool_message() {
        let counter = o200k();
        let call = Item::FunctionCall(FunctionCall {
            id: "fc_1".into(),
            call_id: "call_8f3kq0x2lmzp".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
            status: ItemStatus::Completed,
        });
        assert_eq!(counter.text("get_weather"), 2);
        assert_eq!(counter.item(&call), 3 + 2 + 5);
        let output = |output| {
            Item::FunctionCallOutput(FunctionCallOutput {
                id: "fco_1".into(),
                call_id: "call_8f3kq0x2lmzp".into(),
                output,
                status: ItemStatus::Completed,
            })
        };
        assert_eq!(counter.item(&output(ToolOutput::Text("hello world".into()))), 6);
        assert_eq!(counter.item(&output(ToolOutput::Parts(vec![input_text("hello world")]))), 6);
    }

    #[test]
    fn tools_cost_their_json_as_sent() {
        let counter = o200k();
        let tool = FunctionTool {
            name: "get_weather".into(),
            description: Some("Current weather in a city".into()),
            parameters: Some(
                json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
            ),
            strict: None,
        };
        let sent = r#"{"type":"function","function":{"name":"get_weather","description":"Current weather in a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}"#;
        assert_eq!(serde_json::to_string(&ChatTool::function(&tool)).unwrap(), sent);
        assert_eq!(counter.text(sent), 41);
        assert_eq!(counter.tools(std::slice::from_ref(&tool)), 3 + 41);
        assert_eq!(counter.tools(&[tool.clone(), tool]), 2 * (3 + 41));
        assert_eq!(counter.tools(&[]), 0);
    }

    #[test]
    fn encodings_are_named_in_snake_case_and_default_to_o200k() {
        let named = |name: &str| serde_json::from_value::<Encoding>(json!(name)).unwrap();
        assert_eq!(named("o200k_base"), Encoding::O200kBase);
        assert_eq!(named("cl100k_base"), Encoding::Cl100kBase);
        assert_eq!(named("p50k_base"), Encoding::P50kBase);
        assert_eq!(named("r50k_base"), Encoding::R50kBase);
        assert!(serde_json::from_value::<Encoding>(json!("gpt2")).is_err());
        assert_eq!(Encoding::default(), Encoding::O200kBase);
    }
}
