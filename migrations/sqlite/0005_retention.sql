-- When each conversation was last used (created, items added, a turn appended, metadata updated): it expires
-- `retention.conversations` after that. A conversation stored before this column existed counts as last used when it
-- was created (SQLite adds a NOT NULL column only with a default; every insert sets it).
ALTER TABLE conversations ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
UPDATE conversations SET updated_at = created_at;

-- The purge finds the responses older than the retention, and the deleted ones (tombstones) younger than that, each
-- by an index range instead of reading the whole table; responses_by_tenant_parent tells whether one is continued.
CREATE INDEX responses_by_created_at ON responses (created_at);
CREATE INDEX responses_deleted ON responses (created_at) WHERE deleted_at IS NOT NULL;

-- Likewise the conversations unused for longer than the retention and the deleted ones; and one tenant's
-- conversations, for `threadline purge --tenant`.
CREATE INDEX conversations_by_updated_at ON conversations (updated_at);
CREATE INDEX conversations_deleted ON conversations (updated_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX conversations_by_tenant ON conversations (tenant);
