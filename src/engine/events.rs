//! The one event model of a running turn. Every streaming surface renders these into its own wire events.

use crate::model::{Item, Pieces, Response};

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
            Item::Message(_) | Item::FunctionCallOutput(_) | Item::Compaction(_) => DeltaKind::Text,
        }
    }
}

/// One step of a turn, in order: `Created`, then per output item `ItemAdded`, `Delta`…, `ItemDone`, then
/// `Finished` (completed, incomplete or failed) once the turn is stored.
#[derive(Clone, Debug, PartialEq)]
pub enum TurnEvent {
    /// The response started (an in-progress snapshot).
    Created(Response),
    /// Output item `index` started (in progress, no content yet).
    ItemAdded { index: usize, item: Item },
    /// More text for output item `index`.
    Delta { index: usize, item_id: String, kind: DeltaKind, text: String },
    /// Output item `index` is finished.
    ItemDone { index: usize, item: Item },
    /// The final response, already stored when `store` is true.
    Finished(Response),
}

/// The events that replay a stored response from its start, its deltas cut as they were streamed.
pub fn replay(response: &Response, pieces: &Pieces) -> Vec<TurnEvent> {
    let mut events = vec![TurnEvent::Created(response.in_progress())];
    for (index, item) in response.output.iter().enumerate() {
        events.push(TurnEvent::ItemAdded { index, item: item.started() });
        let kind = DeltaKind::of(item);
        let text = item.text();
        for piece in split(&text, pieces.get(index).map(Vec::as_slice).unwrap_or_default()) {
            events.push(TurnEvent::Delta { index, item_id: item.id().to_string(), kind, text: piece.to_string() });
        }
        events.push(TurnEvent::ItemDone { index, item: item.clone() });
    }
    events.push(TurnEvent::Finished(response.clone()));
    events
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
