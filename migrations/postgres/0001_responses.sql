-- One row per stored response: its parent pointer and its own body (the Response JSON without `output`).
-- A deleted response keeps its row as a tombstone (body NULL, deleted_at set) so descendants still resolve.
CREATE TABLE responses (
    id                   TEXT PRIMARY KEY,
    tenant               TEXT NOT NULL,
    previous_response_id TEXT,
    status               TEXT NOT NULL,
    created_at           BIGINT NOT NULL,
    deleted_at           BIGINT,
    body                 TEXT,
    pieces               TEXT
);

CREATE INDEX responses_by_tenant_parent ON responses (tenant, previous_response_id);

-- The items of one response: its input (direction 0) and output (direction 1), each in order.
CREATE TABLE items (
    tenant      TEXT NOT NULL,
    response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
    direction   BIGINT NOT NULL,
    position    BIGINT NOT NULL,
    item_id     TEXT NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (response_id, direction, position)
);
