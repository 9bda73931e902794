//! Conversations: create, read, update and delete them and their items.

use crate::error::ApiResult;
use crate::model::{Conversation, Item, Metadata};
use crate::store::conversation_not_found;

use super::Engine;

impl Engine {
    /// Creates a conversation holding `items`.
    pub async fn create_conversation(
        &self,
        tenant: &str,
        metadata: Metadata,
        items: &[Item],
    ) -> ApiResult<Conversation> {
        let conversation = Conversation::new(metadata);
        self.store.create_conversation(tenant, &conversation, items).await?;
        Ok(conversation)
    }

    /// A conversation, or 404.
    pub async fn conversation(&self, tenant: &str, id: &str) -> ApiResult<Conversation> {
        self.store.conversation(tenant, id).await?.ok_or_else(|| conversation_not_found(id))
    }

    /// Replaces a conversation's metadata, or 404.
    pub async fn update_conversation(&self, tenant: &str, id: &str, metadata: &Metadata) -> ApiResult<Conversation> {
        self.store.update_conversation(tenant, id, metadata).await?.ok_or_else(|| conversation_not_found(id))
    }

    /// Deletes a conversation, or 404.
    pub async fn delete_conversation(&self, tenant: &str, id: &str) -> ApiResult<()> {
        match self.store.delete_conversation(tenant, id).await? {
            true => Ok(()),
            false => Err(conversation_not_found(id)),
        }
    }

    /// Appends items to a conversation, or 404.
    pub async fn add_conversation_items(&self, tenant: &str, id: &str, items: &[Item]) -> ApiResult<()> {
        match self.store.add_conversation_items(tenant, id, items).await? {
            true => Ok(()),
            false => Err(conversation_not_found(id)),
        }
    }

    /// A conversation's items, oldest first, or 404.
    pub async fn conversation_items(&self, tenant: &str, id: &str) -> ApiResult<Vec<Item>> {
        self.store.conversation_items(tenant, id).await?.ok_or_else(|| conversation_not_found(id))
    }

    /// One item of a conversation, or 404.
    pub async fn conversation_item(&self, tenant: &str, id: &str, item_id: &str) -> ApiResult<Item> {
        let items = self.conversation_items(tenant, id).await?;
        items.into_iter().find(|item| item.id() == item_id).ok_or_else(|| item_not_found(item_id))
    }

    /// Removes an item from a conversation and returns the conversation, or 404.
    pub async fn delete_conversation_item(&self, tenant: &str, id: &str, item_id: &str) -> ApiResult<Conversation> {
        let conversation = self.conversation(tenant, id).await?;
        match self.store.delete_conversation_item(tenant, id, item_id).await? {
            true => Ok(conversation),
            false => Err(item_not_found(item_id)),
        }
    }
}

fn item_not_found(item_id: &str) -> crate::error::ApiError {
    crate::error::ApiError::not_found(format!("Item with id '{item_id}' not found."))
}
