//! `get_conversation` (the turns of a chain, read back from its last one) and `delete_conversation_turn`.

use serde_json::{json, Value};

use super::chat::texts;
use super::tools::{DeleteTurn, GetConversation};
use super::{Failure, Server};
use crate::api::ids;
use crate::engine::EngineError;
use crate::model::{Item, Role};
use crate::store::{Order, PageRequest};

/// Most turns `get_conversation` returns.
const MAX_LIMIT: u32 = 100;

/// Most input items of one turn read back.
const MAX_INPUT_ITEMS: u32 = 100;

impl Server {
    /// The newest `limit` turns of the chain ending at `args.response_id`, oldest first; the walk stops early at a
    /// turn that is gone (deleted or expired).
    pub(super) async fn get_conversation(&self, args: GetConversation, tenant: &str) -> Result<Value, Failure> {
        if !(1..=MAX_LIMIT).contains(&args.limit) {
            return Err(Failure(format!("Invalid arguments: 'limit' must be between 1 and {MAX_LIMIT}.")));
        }
        ids::known_or(&args.response_id, EngineError::ResponseNotFound)?;
        let mut turns = Vec::new();
        let mut next = Some(args.response_id.clone());
        while let Some(id) = next.take() {
            if turns.len() == args.limit as usize {
                next = Some(id);
                break;
            }
            let response = match self.engine.response(tenant, &id).await {
                Ok(response) => response,
                Err(EngineError::ResponseNotFound(_)) if !turns.is_empty() => break,
                Err(err) => return Err(err.into()),
            };
            let page = PageRequest { after: None, limit: MAX_INPUT_ITEMS, order: Order::Asc };
            let input = self.engine.input_items(tenant, &id, &page).await?.items;
            turns.push(json!({
                "response_id": response.id,
                "created_at": rfc3339(response.created_at),
                "model": response.model,
                "status": response.status,
                "system_prompt": role_text(&input, Role::System),
                "prompt": role_text(&input, Role::User).unwrap_or_default(),
                "content": texts(&response, |item| matches!(item, Item::Message(_))),
            }));
            next = response.previous_response_id;
        }
        turns.reverse();
        Ok(json!({"response_id": args.response_id, "turns": turns, "has_more": next.is_some()}))
    }

    /// Deletes the turn `args.response_id`.
    pub(super) async fn delete_turn(&self, args: DeleteTurn, tenant: &str) -> Result<Value, Failure> {
        ids::known_or(&args.response_id, EngineError::ResponseNotFound)?;
        self.engine.delete_response(tenant, &args.response_id).await?;
        Ok(json!({"response_id": args.response_id, "deleted": true}))
    }
}

/// The text of the messages of `role` among `items`, joined; `None` when there are none.
fn role_text(items: &[Item], role: Role) -> Option<String> {
    let texts: Vec<String> = items
        .iter()
        .filter_map(|item| match item {
            Item::Message(message) if message.role == role => Some(message.text()),
            _ => None,
        })
        .collect();
    (!texts.is_empty()).then(|| texts.join("\n"))
}

/// Unix seconds as RFC 3339 (UTC).
pub fn rfc3339(seconds: i64) -> Option<String> {
    let time = chrono::DateTime::from_timestamp(seconds, 0)?;
    Some(time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}
