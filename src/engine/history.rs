//! The history a turn continues — its conversation's items, or the chain of its previous response — as turns of
//! context runs.

use std::ops::Range;
use std::time::Instant;

use super::context::{ContextRun, RunContext};
use super::window::HistoryRun;
use super::{Engine, EngineError, EngineResult};
use crate::model::{Item, ResponseStatus, Role};
use crate::store::Chain;
use crate::telemetry;

/// What a turn continues.
pub enum History {
    /// A conversation's items with their stored token counts.
    Conversation {
        items: Vec<Item>,
        tokens: Vec<Option<u32>>,
    },
    Chain(Chain),
    None,
}

/// A conversation's turn: its items' range and their run.
pub struct Segment {
    range: Range<usize>,
    run: ContextRun,
}

impl Engine {
    /// The history a turn continues: a conversation's items, or the chain of a previous response.
    pub(super) async fn history(
        &self,
        tenant: &str,
        previous_response_id: Option<&str>,
        conversation: Option<&str>,
    ) -> EngineResult<History> {
        let started = Instant::now();
        let history = match (previous_response_id, conversation) {
            (_, Some(conversation)) => {
                let items = self.store.conversation_items(tenant, conversation).await?;
                let items = items.ok_or_else(|| EngineError::ConversationNotFound(conversation.into()))?;
                let (items, tokens) = items.into_iter().unzip();
                History::Conversation { items, tokens }
            }
            (Some(id), None) => {
                let chain = self.store.history(tenant, id, self.max_chain_depth).await?;
                let chain = chain.ok_or_else(|| EngineError::PreviousResponseNotFound(id.into()))?;
                match chain.status() {
                    ResponseStatus::Failed => return Err(EngineError::PreviousResponseFailed(id.into())),
                    ResponseStatus::Queued | ResponseStatus::InProgress => {
                        return Err(EngineError::PreviousResponseInProgress(id.into()))
                    }
                    _ => {}
                }
                let cache = if chain.cached { "hit" } else { "miss" };
                telemetry::history_resolved(chain.tip.depth() as usize, started.elapsed().as_secs_f64(), cache);
                History::Chain(chain)
            }
            (None, None) => History::None,
        };
        Ok(history)
    }
}

impl History {
    /// A conversation's turns, each starting at a user message that follows other items (none for a chain, whose
    /// turns are its stored responses).
    pub fn segments(&self, cx: &RunContext<'_>) -> EngineResult<Vec<Segment>> {
        let History::Conversation { items, tokens } = self else { return Ok(Vec::new()) };
        let mut starts: Vec<usize> =
            (0..items.len()).filter(|&i| i == 0 || (is_user(&items[i]) && !is_user(&items[i - 1]))).collect();
        starts.push(items.len());
        starts
            .windows(2)
            .map(|pair| {
                let range = pair[0]..pair[1];
                let run = ContextRun::new(&items[range.clone()], &tokens[range.clone()], cx)?;
                Ok(Segment { range, run })
            })
            .collect()
    }

    /// The turns of history, oldest first, numbered from 1 (a chain's turns by their depth, deleted ones counted).
    pub fn turns<'a>(&'a self, segments: &'a [Segment], cx: &RunContext<'_>) -> EngineResult<Vec<HistoryRun<'a>>> {
        match self {
            History::Conversation { items, .. } => Ok(segments
                .iter()
                .zip(1..)
                .map(|(segment, position)| HistoryRun {
                    position,
                    run: &segment.run,
                    items: &items[segment.range.clone()],
                })
                .collect()),
            History::Chain(chain) => chain
                .tip
                .chain()
                .into_iter()
                .map(|turn| {
                    Ok(HistoryRun { position: turn.depth(), run: ContextRun::of_turn(turn, cx)?, items: turn.items() })
                })
                .collect(),
            History::None => Ok(Vec::new()),
        }
    }
}

fn is_user(item: &Item) -> bool {
    matches!(item, Item::Message(message) if message.role == Role::User)
}
