//! Conversations: create, read, update and delete them and their items.

use super::{Engine, EngineError, EngineResult};
use crate::model::{Conversation, Item, Metadata};
use crate::store::{ItemList, Page, PageRequest};

impl Engine {
    /// Creates a conversation holding `items`.
    pub async fn create_conversation(
        &self,
        tenant: &str,
        metadata: Metadata,
        items: &[Item],
    ) -> EngineResult<Conversation> {
        let conversation = Conversation::new(metadata);
        self.store.create_conversation(tenant, &conversation, items, &[]).await?;
        Ok(conversation)
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

    /// Appends items to a conversation.
    pub async fn add_conversation_items(&self, tenant: &str, id: &str, items: &[Item]) -> EngineResult<()> {
        match self.store.add_conversation_items(tenant, id, items, &[]).await? {
            true => Ok(()),
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
