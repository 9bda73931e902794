//! Retention: which stored data has expired by the store's clock, what a purge erases and reports, and the SQL of
//! both (`sql_retention.rs` runs it).
//!
//! A response is *fresh* while it is not deleted and younger than `retention.responses`; it is *alive* while it or
//! any response continuing it (directly or through other turns, deleted ones included) is fresh. An expired (not
//! alive) response is not found, exactly like a deleted one. Ancestors of an alive response are alive, so a chain
//! stays whole while any turn built on it is alive, and nothing is written to its older turns to keep them. A
//! conversation expires `retention.conversations` after its last use (`updated_at`).

use std::fmt;

use crate::clock::Clock;
use crate::config::RetentionConfig;

/// The retention settings and the clock they are measured by.
#[derive(Clone, Debug)]
pub struct Retention {
    pub config: RetentionConfig,
    pub clock: Clock,
}

/// The times one operation decides expiry by (Unix seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cutoffs {
    pub now: i64,
    /// The oldest creation time of a fresh response.
    pub responses: i64,
    /// The oldest last use of a conversation still kept.
    pub conversations: i64,
}

impl Retention {
    /// The cutoffs as of now (`i64::MIN` for data kept forever).
    pub fn cutoffs(&self) -> Cutoffs {
        let now = self.clock.timestamp();
        let cutoff = |kept: Option<std::time::Duration>| match kept {
            Some(kept) => now.saturating_sub(i64::try_from(kept.as_secs()).unwrap_or(i64::MAX)),
            None => i64::MIN,
        };
        Cutoffs { now, responses: cutoff(self.config.responses), conversations: cutoff(self.config.conversations) }
    }
}

impl Cutoffs {
    /// Whether a response created at `created_at` (and not deleted) is fresh.
    pub fn fresh(&self, created_at: i64) -> bool {
        created_at >= self.responses
    }
}

/// What a purge erases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purge<'a> {
    /// Expired data: responses no fresh response continues (deleted ones included), conversations past their
    /// retention and deleted ones, with their items.
    Expired,
    /// Every response, conversation and item of this tenant, tombstones included.
    Tenant(&'a str),
}

/// How many rows a purge deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub responses: u64,
    /// Input and output items of those responses.
    pub response_items: u64,
    pub conversations: u64,
    /// Items of those conversations.
    pub conversation_items: u64,
}

impl PurgeReport {
    /// Whether nothing was deleted.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl fmt::Display for PurgeReport {
    /// `purged 12 responses (40 items), 2 conversations (7 items)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "purged {} responses ({} items), {} conversations ({} items)",
            self.responses, self.response_items, self.conversations, self.conversation_items
        )
    }
}

/// Whether a response of tenant `$1` continuing response `$2` (directly or through other turns, deleted ones
/// included) is fresh: not deleted and created at `$3` or later. Each hop uses `responses_by_tenant_parent`.
pub const FRESH_DESCENDANT: &str = "WITH RECURSIVE subtree(id, created_at, deleted_at) AS ( \
        SELECT id, created_at, deleted_at FROM responses WHERE tenant = $1 AND previous_response_id = $2 \
        UNION \
        SELECT r.id, r.created_at, r.deleted_at FROM responses r JOIN subtree s ON r.previous_response_id = s.id \
        WHERE r.tenant = $1 \
    ) \
    SELECT EXISTS (SELECT 1 FROM subtree WHERE deleted_at IS NULL AND created_at >= $3)";

/// The creation time of response `$2` of tenant `$1`, unless deleted.
pub const RESPONSE_CREATED_AT: &str =
    "SELECT created_at FROM responses WHERE tenant = $1 AND id = $2 AND deleted_at IS NULL";

/// What picks the responses to purge: up to `$2` responses that are not fresh and that no response continues (deleted
/// or not). Removed leaf by leaf, a chain goes from its newest turn up, so exactly the responses no fresh one continues
/// go. Those created before `$1`, then deleted ones created since (each an index range: `responses_by_created_at`,
/// `responses_deleted`; `responses_by_tenant_parent` finds children).
pub const EXPIRED_RESPONSES: [&str; 2] = [
    "SELECT r.id FROM responses r WHERE r.created_at < $1 \
        AND NOT EXISTS (SELECT 1 FROM responses c WHERE c.tenant = r.tenant AND c.previous_response_id = r.id) \
        LIMIT $2",
    "SELECT r.id FROM responses r WHERE r.deleted_at IS NOT NULL AND r.created_at >= $1 \
        AND NOT EXISTS (SELECT 1 FROM responses c WHERE c.tenant = r.tenant AND c.previous_response_id = r.id) \
        LIMIT $2",
];

/// What picks up to `$2` responses of tenant `$1`.
pub const TENANT_RESPONSES: [&str; 1] = ["SELECT id FROM responses WHERE tenant = $1 LIMIT $2"];

/// What picks up to `$2` conversations to purge: those last used before `$1`, then deleted ones used since.
pub const EXPIRED_CONVERSATIONS: [&str; 2] = [
    "SELECT id FROM conversations WHERE updated_at < $1 LIMIT $2",
    "SELECT id FROM conversations WHERE deleted_at IS NOT NULL AND updated_at >= $1 LIMIT $2",
];

/// What picks up to `$2` conversations of tenant `$1`.
pub const TENANT_CONVERSATIONS: [&str; 1] = ["SELECT id FROM conversations WHERE tenant = $1 LIMIT $2"];

/// The rows that belong to the responses of a list that follows (`(id, id, …)`), one statement per table: purging
/// responses runs each, then `DELETE_RESPONSES`. A table with rows of a response (a column referencing
/// `responses (id)`) gets its statement here.
pub const DELETE_RESPONSE_ITEMS: &str = "DELETE FROM items WHERE response_id IN ";
/// The background runs of responses (erasing a tenant's data stops its running responses wherever they run).
pub const DELETE_RESPONSE_RUNS: &str = "DELETE FROM background_runs WHERE response_id IN ";

/// The responses of a list that follows.
pub const DELETE_RESPONSES: &str = "DELETE FROM responses WHERE id IN ";

/// The items of the conversations of a list that follows.
pub const DELETE_CONVERSATION_ITEMS: &str = "DELETE FROM conversation_items WHERE conversation_id IN ";

/// The conversations of a list that follows.
pub const DELETE_CONVERSATIONS: &str = "DELETE FROM conversations WHERE id IN ";

/// The id a deletion notice carries when every response of its tenant was erased.
pub const EVERY_RESPONSE: &str = "*";

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn cutoffs_follow_the_clock_and_none_keeps_forever() {
        let clock = Clock::default();
        let config = RetentionConfig { conversations: Some(Duration::from_secs(60)), ..RetentionConfig::default() };
        let retention = Retention { config, clock: clock.clone() };
        clock.advance(Duration::from_secs(86_400));
        let cutoffs = retention.cutoffs();
        assert_eq!(cutoffs.now - cutoffs.responses, 30 * 86_400);
        assert_eq!(cutoffs.now - cutoffs.conversations, 60);
        assert!(cutoffs.fresh(cutoffs.now - 30 * 86_400) && !cutoffs.fresh(cutoffs.now - 30 * 86_400 - 1));
        let forever = Retention { config: RetentionConfig { responses: None, ..RetentionConfig::default() }, clock };
        assert_eq!(forever.cutoffs().responses, i64::MIN);
        let report = PurgeReport { responses: 12, response_items: 40, conversations: 2, conversation_items: 7 };
        assert_eq!(report.to_string(), "purged 12 responses (40 items), 2 conversations (7 items)");
        assert!(!report.is_empty() && PurgeReport::default().is_empty());
    }
}
