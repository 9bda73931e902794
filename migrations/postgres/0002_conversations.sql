-- Conversations: explicit, client-managed item lists. A deleted conversation keeps its row (metadata erased).
CREATE TABLE conversations (
    id            TEXT PRIMARY KEY NOT NULL,
    tenant        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    metadata      TEXT NOT NULL,
    -- The position the next appended item gets; bumping it reserves positions for one append.
    next_position BIGINT NOT NULL,
    deleted_at    BIGINT
);

CREATE TABLE conversation_items (
    tenant          TEXT NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    position        BIGINT NOT NULL,
    item_id         TEXT NOT NULL,
    body            TEXT NOT NULL,
    PRIMARY KEY (conversation_id, position),
    UNIQUE (conversation_id, item_id)
);
