//! The Conversation object: an explicit, client-managed list of items with metadata.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Metadata;

/// `{id:"conv_…", object:"conversation", created_at, metadata}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Conversation {
    pub id: String,
    pub object: String,
    pub created_at: i64,
    #[schema(inline)]
    pub metadata: Metadata,
}

impl Conversation {
    /// A new conversation created now.
    pub fn new(metadata: Metadata) -> Self {
        Self {
            id: super::new_id("conv"),
            object: "conversation".into(),
            created_at: chrono::Utc::now().timestamp(),
            metadata,
        }
    }
}

/// `{id}` of the conversation a response belongs to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConversationRef {
    pub id: String,
}
