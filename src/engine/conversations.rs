//! Conversations: create, read, update and delete them and their items.

use super::context::RunContext;
use super::references::{ReferenceScope, CONVERSATION_ITEMS};
use super::{Engine, EngineError, EngineResult};
use crate::model::{Conversation, Item, Metadata};
use crate::store::{ItemList, Page, PageRequest};
use crate::tokens::TokenCounter;

impl Engine {
    /// Creates a conversation holding `items`.
    pub async fn create_conversation(
        &self,
        tenant: &str,
        metadata: Metadata,
        mut items: Vec<Item>,
    ) -> EngineResult<Conversation> {
        let conversation = Conversation { created_at: self.now(), ..Conversation::new(metadata) };
        // A new conversation holds nothing yet: references name stored items of the tenant.
        self.resolve_references(tenant, &mut items, ReferenceScope::Nothing, CONVERSATION_ITEMS).await?;
        self.admit_input(tenant, &mut items)?;
        self.store.create_conversation(tenant, &conversation, &items, &self.item_counts(tenant, &items)).await?;
        Ok(conversation)
    }

    /// The token count of each item added to a conversation outside a turn (no model is known: the default
    /// encoding counts them).
    fn item_counts(&self, tenant: &str, items: &[Item]) -> Vec<u32> {
        let counter = TokenCounter::new(self.context.encoding, self.context.image_tokens);
        let cx = RunContext::new(counter, &self.sealer, tenant);
        items.iter().map(|item| cx.item_tokens(item)).collect()
    }

    /// A conversation.
    pub async fn conversation(&self, tenant: &str, id: &str) -> EngineResult<Conversation> {
        self.store.conversation(tenant, id).await?.ok_or_else(|| not_found(id))
    }

    /// Replaces a conversation's metadata.
    pub async fn update_conversation(&self, tenant: &str, id: &str, metadata: &Metadata) -> EngineResult<Conversation> {
        self.store.update_conversation(tenant, id, metadata).await?.ok_or_else(|| not_found(id))
    }

    /// Deletes a conversation.
    pub async fn delete_conversation(&self, tenant: &str, id: &str) -> EngineResult<()> {
        match self.store.delete_conversation(tenant, id).await? {
            true => Ok(()),
            false => Err(not_found(id)),
        }
    }

    /// Appends items to a conversation; returns them as stored.
    pub async fn add_conversation_items(
        &self,
        tenant: &str,
        id: &str,
        mut items: Vec<Item>,
    ) -> EngineResult<Vec<Item>> {
        self.resolve_references(tenant, &mut items, ReferenceScope::Conversation(id), CONVERSATION_ITEMS).await?;
        self.admit_input(tenant, &mut items)?;
        match self.store.add_conversation_items(tenant, id, &items, &self.item_counts(tenant, &items)).await? {
            true => Ok(items),
            false => Err(not_found(id)),
        }
    }

    /// A page of a conversation's items.
    pub async fn conversation_items(&self, tenant: &str, id: &str, page: &PageRequest) -> EngineResult<Page> {
        self.store.items_page(tenant, ItemList::Conversation(id), page).await?.ok_or_else(|| not_found(id))
    }

    /// One item of a conversation.
    pub async fn conversation_item(&self, tenant: &str, id: &str, item_id: &str) -> EngineResult<Item> {
        let item = self.store.conversation_item(tenant, id, item_id).await?.ok_or_else(|| not_found(id))?;
        item.ok_or_else(|| EngineError::ItemNotFound(item_id.into()))
    }

    /// Removes an item from a conversation and returns the conversation.
    pub async fn delete_conversation_item(&self, tenant: &str, id: &str, item_id: &str) -> EngineResult<Conversation> {
        let conversation = self.conversation(tenant, id).await?;
        match self.store.delete_conversation_item(tenant, id, item_id).await? {
            true => Ok(conversation),
            false => Err(EngineError::ItemNotFound(item_id.into())),
        }
    }
}

fn not_found(id: &str) -> EngineError {
    EngineError::ConversationNotFound(id.into())
}
