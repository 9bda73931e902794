//! Reasoning items as clients see them. A stored reasoning item's `encrypted_content` is internal — the backend's
//! opaque form of its reasoning, or a blob a client sent that did not open here — and is never shown as it is:
//! without `include: ["reasoning.encrypted_content"]` a reasoning item shows none; with it, it shows threadline's own
//! sealed form of the item (its content, summary and backend form, sealed to the tenant with the server's key),
//! which restores the item when a client sends it back as input.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::{Engine, Sealer, TurnEvent};
use crate::model::{Item, ItemStatus, Reasoning, ReasoningText, Response};

/// What a reasoning item's sealed `encrypted_content` holds. Its `reasoning` tag keeps it apart from any other
/// sealed value (a compaction's summary does not open as one, nor it as a summary).
#[derive(Serialize, Deserialize)]
struct SealedReasoning {
    reasoning: u8,
    summary: Vec<serde_json::Value>,
    content: Vec<ReasoningText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backend: Option<String>,
}

/// The format version of `SealedReasoning`.
const SEALED_REASONING: u8 = 1;

/// Shows items, responses and turn events to one tenant's client, with `encrypted_content` as that request asked.
pub struct Presenter {
    sealer: Sealer,
    tenant: String,
    encrypted_reasoning: bool,
    /// The sealed form of each reasoning item shown so far, by id: one item shows the same blob in every event of
    /// a stream and in its final response.
    sealed: Mutex<HashMap<String, String>>,
}

impl Presenter {
    /// `item` as shown: a reasoning item's `encrypted_content` sealed (when asked for and the item is finished) or
    /// left out.
    pub fn item(&self, mut item: Item) -> Item {
        if let Item::Reasoning(reasoning) = &mut item {
            reasoning.encrypted_content = match self.encrypted_reasoning && reasoning.status != ItemStatus::InProgress {
                true => Some(self.seal(reasoning)),
                false => None,
            };
        }
        item
    }

    /// `items` as shown.
    pub fn items(&self, items: Vec<Item>) -> Vec<Item> {
        items.into_iter().map(|item| self.item(item)).collect()
    }

    /// `response` with its output as shown.
    pub fn response(&self, mut response: Response) -> Response {
        response.output = self.items(std::mem::take(&mut response.output));
        response
    }

    /// `event` with its items and response as shown.
    pub fn event(&self, event: TurnEvent) -> TurnEvent {
        match event {
            TurnEvent::Queued(response) => TurnEvent::Queued(self.response(response)),
            TurnEvent::Created(response) => TurnEvent::Created(self.response(response)),
            TurnEvent::Finished(response) => TurnEvent::Finished(self.response(response)),
            TurnEvent::ItemAdded { index, item } => TurnEvent::ItemAdded { index, item: self.item(item) },
            TurnEvent::ItemDone { index, item } => TurnEvent::ItemDone { index, item: self.item(item) },
            delta @ TurnEvent::Delta { .. } => delta,
        }
    }

    fn seal(&self, reasoning: &Reasoning) -> String {
        let mut sealed = self.sealed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let blob = sealed.entry(reasoning.id.clone()).or_insert_with(|| {
            let value = SealedReasoning {
                reasoning: SEALED_REASONING,
                summary: reasoning.summary.clone(),
                content: reasoning.content.clone(),
                backend: reasoning.encrypted_content.clone(),
            };
            self.sealer.seal(&self.tenant, &value)
        });
        blob.clone()
    }
}

impl Engine {
    /// Shows what `tenant`'s request reads; `encrypted_reasoning`: it asked for `reasoning.encrypted_content`.
    pub fn presenter(&self, tenant: &str, encrypted_reasoning: bool) -> Presenter {
        Presenter {
            sealer: self.sealer.clone(),
            tenant: tenant.into(),
            encrypted_reasoning,
            sealed: Mutex::new(HashMap::new()),
        }
    }

    /// Restores the reasoning items of a new input whose `encrypted_content` opens as one this server sealed for
    /// `tenant`: their summary, content and backend form come back from it. One that does not open is kept as given
    /// (it may be a backend's own).
    pub(super) fn open_reasoning(&self, tenant: &str, items: &mut [Item]) {
        for item in items {
            let Item::Reasoning(reasoning) = item else { continue };
            let Some(blob) = reasoning.encrypted_content.as_deref() else { continue };
            let Some(sealed) = self.sealer.open::<SealedReasoning>(tenant, blob) else { continue };
            if sealed.reasoning != SEALED_REASONING {
                continue;
            }
            reasoning.summary = sealed.summary;
            reasoning.content = sealed.content;
            reasoning.encrypted_content = sealed.backend;
        }
    }
}
