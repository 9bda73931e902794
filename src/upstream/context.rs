//! The context of a completion request in the shape its upstream takes: runs of typed entries (Chat Completions
//! messages, or Responses API input items), each made once — a stored turn's run is shared by every request whose
//! context holds that turn — and serialised once, into the request's body. Nothing is read back from JSON.

use std::sync::Arc;

use serde::{Serialize, Serializer};

use super::responses_wire::InputItem;
use super::ChatMessage;

/// The shape in which a backend takes a turn's context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ContextFormat {
    /// Chat Completions messages.
    #[default]
    ChatMessages,
    /// Responses API input items (reasoning items and assistant phases included).
    ResponsesInput,
}

/// A run of context entries, all of one format.
#[derive(Clone, Debug)]
pub enum Run {
    Chat(Arc<[ChatMessage]>),
    Responses(Arc<[InputItem]>),
}

impl Run {
    /// How many entries it holds.
    pub fn len(&self) -> usize {
        match self {
            Run::Chat(messages) => messages.len(),
            Run::Responses(items) => items.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its format.
    pub fn format(&self) -> ContextFormat {
        match self {
            Run::Chat(_) => ContextFormat::ChatMessages,
            Run::Responses(_) => ContextFormat::ResponsesInput,
        }
    }
}

/// Runs of entries of one type, in order; they serialize as one array.
#[derive(Clone, Debug)]
pub struct Runs<T>(Vec<Arc<[T]>>);

impl<T> Runs<T> {
    /// Every entry, in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().flat_map(|run| run.iter())
    }

    pub fn len(&self) -> usize {
        self.0.iter().map(|run| run.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Serialize> Serialize for Runs<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// The whole context of a request: Chat Completions messages, or Responses input items for a backend that takes
/// those.
#[derive(Clone, Debug)]
pub enum Context {
    Chat(Runs<ChatMessage>),
    Responses(Runs<InputItem>),
}

/// Runs of another format than the context's were joined into it.
#[derive(Debug, thiserror::Error)]
#[error("a context run in another format than its context's")]
pub struct FormatMismatch;

impl Context {
    /// The context of these messages.
    pub fn chat(messages: Vec<ChatMessage>) -> Self {
        Context::Chat(Runs(vec![messages.into()]))
    }

    /// The context made of `runs`, in order, all in `format` (empty runs of any format are left out).
    pub fn join<'a>(format: ContextFormat, runs: impl Iterator<Item = &'a Run>) -> Result<Self, FormatMismatch> {
        let mut context = match format {
            ContextFormat::ChatMessages => Context::Chat(Runs(Vec::new())),
            ContextFormat::ResponsesInput => Context::Responses(Runs(Vec::new())),
        };
        for run in runs.filter(|run| !run.is_empty()) {
            match (&mut context, run) {
                (Context::Chat(runs), Run::Chat(messages)) => runs.0.push(messages.clone()),
                (Context::Responses(runs), Run::Responses(items)) => runs.0.push(items.clone()),
                _ => return Err(FormatMismatch),
            }
        }
        Ok(context)
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        match self {
            Context::Chat(messages) => messages.len(),
            Context::Responses(items) => items.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::ChatRole;

    #[test]
    fn runs_join_into_one_array() {
        let hi: Run = Run::Chat(vec![ChatMessage::text(ChatRole::User, "hi \"you\"")].into());
        let none = Run::Responses(Vec::new().into());
        let two =
            Run::Chat(vec![ChatMessage::text(ChatRole::Assistant, "a"), ChatMessage::text(ChatRole::User, "b")].into());
        let context = Context::join(ContextFormat::ChatMessages, [&none, &hi, &none, &two].into_iter()).unwrap();
        assert_eq!(context.len(), 3);
        let Context::Chat(messages) = &context else { panic!("not chat messages") };
        assert_eq!(
            serde_json::to_string(messages).unwrap(),
            r#"[{"role":"user","content":"hi \"you\""},{"role":"assistant","content":"a"},{"role":"user","content":"b"}]"#
        );
        let mixed = Context::join(ContextFormat::ResponsesInput, [&hi].into_iter());
        assert!(mixed.is_err());
    }
}
