//! `item_reference` input items: each stands for a stored item of the tenant by its id, and is replaced by a copy of
//! that item before the turn runs — as if the client had sent the item itself.
//!
//! A reference resolves first within what the turn continues: any item (input or output) of any turn of the chain of
//! `previous_response_id`, the items of its `conversation`, or the context a WebSocket kept of its latest response.
//! The references left then resolve, all in one store read, to any stored item of the tenant, as OpenAI resolves
//! them across a project: an item of any of its responses (another chain's too) or conversations. A deleted or
//! expired response or conversation holds none, a `store: false` turn stored none, another tenant's are never found:
//! such an id is the same 400 as an unknown one. The copy gets a new id of its type (`msg_…`, `fc_…`, …): item ids
//! stay unique within a conversation, which the store enforces, and within a chain, so a later reference there names
//! one item.

use super::history::LocalContext;
use super::{Engine, EngineError, EngineResult, TurnRequest};
use crate::model::Item;

/// Where the item references of an input are looked up.
pub(super) enum ReferenceScope<'a> {
    /// Every turn of the chain up to and including this response.
    Chain(&'a str),
    /// The items of this conversation.
    Conversation(&'a str),
    /// The context a WebSocket kept of the response the turn continues.
    Local(&'a LocalContext),
    /// Nothing: references resolve among the tenant's stored items only.
    Nothing,
}

/// The request field that holds a conversation's new items, for errors of the items `add_conversation_items` gets.
pub(super) const CONVERSATION_ITEMS: &str = "items";

impl<'a> ReferenceScope<'a> {
    /// What a turn's references point into: what the turn continues, as `prepare` reads it.
    pub fn of_turn(request: &'a TurnRequest) -> Self {
        if let Some(kept) = request.local.as_ref().and_then(|local| local.history.as_deref()) {
            return Self::Local(kept);
        }
        match (request.previous_response_id.as_deref(), request.conversation.as_deref()) {
            (_, Some(conversation)) => Self::Conversation(conversation),
            (Some(id), None) => Self::Chain(id),
            (None, None) => Self::Nothing,
        }
    }
}

impl Engine {
    /// Admits a turn's input: its references resolved, then its compaction items checked.
    pub(super) async fn admit_turn_input(&self, request: &mut TurnRequest) -> EngineResult<()> {
        let mut input = std::mem::take(&mut request.input);
        let scope = ReferenceScope::of_turn(request);
        let resolved = self.resolve_references(&request.tenant, &mut input, scope, "input").await;
        request.input = input;
        resolved?;
        self.admit_input(&request.tenant, &mut request.input)
    }

    /// Replaces each item reference of `items` with a renamed copy of the item it names: in `scope` first, else
    /// anywhere in the tenant's stored items; `ItemReferenceNotFound` (naming `param`, the items' field) for an id
    /// found in neither (another tenant's items never are).
    pub(super) async fn resolve_references(
        &self,
        tenant: &str,
        items: &mut [Item],
        scope: ReferenceScope<'_>,
        param: &'static str,
    ) -> EngineResult<()> {
        if !items.iter().any(|item| matches!(item, Item::ItemReference(_))) {
            return Ok(());
        }
        let missing = self.resolve_in_scope(tenant, items, scope).await?;
        if missing.is_empty() {
            return Ok(());
        }
        // The rest in one read of the store, whatever response or conversation holds them.
        let ids: Vec<String> = missing.iter().map(|&index| items[index].id().to_string()).collect();
        let wanted: Vec<&str> = ids.iter().map(String::as_str).collect();
        let stored = self.store.stored_items(tenant, &wanted).await?;
        for (index, id) in missing.into_iter().zip(ids) {
            let found = stored.iter().find(|item| item.id() == id && !matches!(item, Item::ItemReference(_)));
            items[index] = found.ok_or(EngineError::ItemReferenceNotFound { id, param })?.renamed();
        }
        Ok(())
    }

    /// Replaces each item reference of `items` that names an item of `scope` with a renamed copy of it; returns the
    /// positions of the others.
    async fn resolve_in_scope(
        &self,
        tenant: &str,
        items: &mut [Item],
        scope: ReferenceScope<'_>,
    ) -> EngineResult<Vec<usize>> {
        // A chain is read once (usually from the history cache, where `prepare` finds it again).
        let chain = match scope {
            ReferenceScope::Chain(id) => {
                let chain = self.store.history(tenant, id, self.max_chain_depth).await?;
                Some(chain.ok_or_else(|| EngineError::PreviousResponseNotFound(id.into()))?)
            }
            _ => None,
        };
        let held: Vec<&Item> = match (&scope, &chain) {
            (ReferenceScope::Chain(_), Some(chain)) => chain.items(),
            (ReferenceScope::Local(kept), _) => kept.items.iter().collect(),
            _ => Vec::new(),
        };
        let mut missing = Vec::new();
        for (index, item) in items.iter_mut().enumerate() {
            let Item::ItemReference(reference) = item else { continue };
            let id = reference.id.as_str();
            let found = match scope {
                ReferenceScope::Conversation(conversation) => {
                    let item = self.store.conversation_item(tenant, conversation, id).await?;
                    item.ok_or_else(|| EngineError::ConversationNotFound(conversation.into()))?
                }
                ReferenceScope::Nothing => None,
                // The newest item with the id, should a client have sent one id twice.
                _ => held.iter().rev().find(|held| held.id() == id).map(|&held| held.clone()),
            };
            match found.filter(|item| !matches!(item, Item::ItemReference(_))) {
                Some(found) => *item = found.renamed(),
                None => missing.push(index),
            }
        }
        Ok(missing)
    }
}
