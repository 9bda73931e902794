//! The one event model of a running turn. Every streaming surface renders these into its own wire events.

use serde_json::Value;

use crate::model::{Item, ItemStatus, Piece, Pieces, Progress, Response, ResponseStatus};

/// What kind of text a delta carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeltaKind {
    Text,
    Reasoning,
    /// The arguments of a function call.
    Arguments,
}

impl DeltaKind {
    /// The kind of delta an output item grows by.
    pub fn of(item: &Item) -> DeltaKind {
        match item {
            Item::FunctionCall(_) => DeltaKind::Arguments,
            Item::Reasoning(_) => DeltaKind::Reasoning,
            Item::Message(_) | Item::FunctionCallOutput(_) | Item::Compaction(_) | Item::ItemReference(_) => {
                DeltaKind::Text
            }
        }
    }
}

/// One step of a turn, in order: `Queued` (background responses only), `Created`, then per output item
/// `ItemAdded`, `Delta`…, `ItemDone`, then `Finished` (completed, incomplete, failed or cancelled) once the turn is
/// stored.
#[derive(Clone, Debug, PartialEq)]
pub enum TurnEvent {
    /// A background response was accepted (a queued snapshot).
    Queued(Response),
    /// The response started (an in-progress snapshot).
    Created(Response),
    /// Output item `index` started (in progress, no content yet).
    ItemAdded { index: usize, item: Item },
    /// More text for output item `index`, with the log probabilities of its tokens when they were asked for.
    Delta { index: usize, item_id: String, kind: DeltaKind, text: String, logprobs: Vec<Value> },
    /// Output item `index` is finished.
    ItemDone { index: usize, item: Item },
    /// The final response, already stored when `store` is true.
    Finished(Response),
}

/// The events that replay a stored response from its start, its deltas cut as they were streamed. A response still
/// queued or running replays as far as it has got (an item still growing is not done), so the replays of one
/// response taken as it runs each extend the one before, and the last is the whole stream.
pub fn replay(response: &Response, pieces: &Pieces) -> Vec<TurnEvent> {
    let mut events = Vec::new();
    if response.background {
        events.push(TurnEvent::Queued(response.queued()));
    }
    if response.status == ResponseStatus::Queued {
        return events;
    }
    events.push(TurnEvent::Created(response.in_progress()));
    let running = response.status == ResponseStatus::InProgress;
    for (index, item) in response.output.iter().enumerate() {
        events.push(TurnEvent::ItemAdded { index, item: item.started() });
        let kind = DeltaKind::of(item);
        let text = item.text();
        let streamed = pieces.get(index).map(Vec::as_slice).unwrap_or_default();
        let lengths: Vec<usize> = streamed.iter().map(|piece| piece.len).collect();
        let texts = split(&text, &lengths);
        // A text that does not fit its pieces replays as one delta, with all its log probabilities.
        let counts: Vec<usize> = match texts.len() == streamed.len() {
            true => streamed.iter().map(|piece| piece.logprobs).collect(),
            false => vec![usize::MAX; texts.len()],
        };
        let mut logprobs = item.logprobs();
        for (piece, count) in texts.into_iter().zip(counts) {
            let (these, rest) = logprobs.split_at(count.min(logprobs.len()));
            logprobs = rest;
            let (item_id, text, logprobs) = (item.id().to_string(), piece.to_string(), these.to_vec());
            events.push(TurnEvent::Delta { index, item_id, kind, text, logprobs });
        }
        if !running || item.status() != ItemStatus::InProgress {
            events.push(TurnEvent::ItemDone { index, item: item.clone() });
        }
    }
    if !running {
        events.push(TurnEvent::Finished(response.clone()));
    }
    events
}

impl Progress {
    /// Follows one event of the turn.
    pub fn apply(&mut self, event: &TurnEvent) {
        match event {
            TurnEvent::ItemAdded { index, item } => {
                self.output.truncate(*index);
                self.output.push(item.clone());
                self.pieces.resize(index + 1, Vec::new());
                self.pieces[*index].clear();
            }
            TurnEvent::Delta { index, text, logprobs, .. } => {
                if let (Some(item), Some(pieces)) = (self.output.get_mut(*index), self.pieces.get_mut(*index)) {
                    item.append_text(text);
                    item.append_logprobs(logprobs);
                    pieces.push(Piece { len: text.len(), logprobs: logprobs.len() });
                }
            }
            TurnEvent::ItemDone { index, item } => {
                if let Some(slot) = self.output.get_mut(*index) {
                    *slot = item.clone();
                }
            }
            TurnEvent::Queued(_) | TurnEvent::Created(_) | TurnEvent::Finished(_) => {}
        }
    }
}

/// `text` cut at the given byte lengths; the whole text as one piece if they do not fit it.
fn split<'a>(text: &'a str, lengths: &[usize]) -> Vec<&'a str> {
    let mut pieces = Vec::with_capacity(lengths.len());
    let mut rest = text;
    for &length in lengths {
        match (rest.get(..length), rest.get(length..)) {
            (Some(piece), Some(tail)) => {
                pieces.push(piece);
                rest = tail;
            }
            _ => break,
        }
    }
    if !rest.is_empty() || pieces.len() != lengths.len() {
        return if text.is_empty() { Vec::new() } else { vec![text] };
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn split_repeats_the_streamed_pieces() {
        assert_eq!(split("héllo world", &[3, 4, 5]), vec!["hé", "llo ", "world"]);
        assert_eq!(split("hello", &[2, 9]), vec!["hello"]);
        assert_eq!(split("hello", &[]), vec!["hello"]);
        assert_eq!(split("", &[]), Vec::<&str>::new());
    }
}
