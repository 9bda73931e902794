//! The history a turn continues — its conversation's items, the chain of its previous response, or the context a
//! surface kept of it (a WebSocket's latest response) — as turns of context runs.

use std::ops::Range;
use std::sync::Arc;
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
    /// The whole context of a previous response as its surface kept it, in the turns of its chain.
    Local(Arc<LocalContext>),
    None,
}

/// A turn's context as items, oldest first — its history, its input and, once it has finished, its output — each
/// with its token count: what a WebSocket keeps of its latest response to continue it without the store.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LocalContext {
    pub items: Vec<Item>,
    pub tokens: Vec<Option<u32>>,
    /// Each turn's number in its chain (from 1, as a chain numbers its turns) and where its items start.
    pub turns: Vec<(u32, usize)>,
}

impl LocalContext {
    /// Starts the next turn at the end of the items.
    pub fn start_turn(&mut self) {
        let position = self.turns.last().map_or(1, |&(position, _)| position + 1);
        self.turns.push((position, self.items.len()));
    }

    /// Appends items with their token counts to the last turn.
    pub fn extend(&mut self, items: impl IntoIterator<Item = Item>, tokens: impl IntoIterator<Item = Option<u32>>) {
        self.items.extend(items);
        self.tokens.extend(tokens);
        self.tokens.resize(self.items.len(), None);
    }
}

/// A turn of a conversation or a kept context: its number (from 1), its items' range and their run.
pub struct Segment {
    position: u32,
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
    /// The turns of a conversation, each starting at a user message that follows other items, or of a kept context,
    /// as its chain's turns (none for a chain, whose turns are its stored responses).
    pub fn segments(&self, cx: &RunContext<'_>) -> Vec<Segment> {
        let (items, tokens, mut starts) = match self {
            History::Conversation { items, tokens } => {
                let starts = (0..items.len()).filter(|&i| i == 0 || (is_user(&items[i]) && !is_user(&items[i - 1])));
                (items, tokens, starts.zip(1..).map(|(start, position)| (position, start)).collect())
            }
            History::Local(local) => (&local.items, &local.tokens, local.turns.clone()),
            History::Chain(_) | History::None => return Vec::new(),
        };
        starts.push((0, items.len()));
        starts
            .windows(2)
            .map(|pair| {
                let range = pair[0].1..pair[1].1;
                let run = ContextRun::new(&items[range.clone()], &tokens[range.clone()], cx);
                Segment { position: pair[0].0, range, run }
            })
            .collect()
    }

    /// The turns of history, oldest first, numbered from 1 (a chain's turns by their depth, deleted ones counted).
    pub fn turns<'a>(&'a self, segments: &'a [Segment], cx: &RunContext<'_>) -> Vec<HistoryRun<'a>> {
        match self {
            History::Chain(chain) => chain
                .tip
                .chain()
                .into_iter()
                .map(|turn| HistoryRun {
                    position: turn.depth(),
                    run: ContextRun::of_turn(turn, cx),
                    items: turn.items(),
                })
                .collect(),
            History::Conversation { .. } | History::Local(_) => {
                let items = self.listed().map_or(&[][..], |(items, _)| items);
                segments
                    .iter()
                    .map(|segment| HistoryRun {
                        position: segment.position,
                        run: &segment.run,
                        items: &items[segment.range.clone()],
                    })
                    .collect()
            }
            History::None => Vec::new(),
        }
    }

    /// The items of a conversation or a kept context, with their token counts.
    fn listed(&self) -> Option<(&[Item], &[Option<u32>])> {
        match self {
            History::Conversation { items, tokens } => Some((items, tokens)),
            History::Local(local) => Some((&local.items, &local.tokens)),
            History::Chain(_) | History::None => None,
        }
    }

    /// Every item of the history, oldest first, with its token count, in its turns.
    pub fn context(&self) -> LocalContext {
        match self {
            History::Chain(chain) => {
                let mut context = LocalContext::default();
                for turn in chain.tip.chain() {
                    context.turns.push((turn.depth(), context.items.len()));
                    let tokens = (0..turn.items().len()).map(|i| turn.tokens().get(i).copied().flatten());
                    context.extend(turn.items().iter().cloned(), tokens);
                }
                context
            }
            History::Local(local) => LocalContext::clone(local),
            // A conversation is its own history: its turns are not a chain's.
            History::Conversation { .. } | History::None => LocalContext::default(),
        }
    }
}

fn is_user(item: &Item) -> bool {
    matches!(item, Item::Message(message) if message.role == Role::User)
}
