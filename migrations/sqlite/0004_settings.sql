-- Values the server keeps for itself, shared by every replica: the key that seals compaction summaries when none is
-- configured (made by the first server that needs it).
CREATE TABLE settings (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
