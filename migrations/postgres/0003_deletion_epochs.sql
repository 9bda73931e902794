-- How many responses of each tenant have been deleted, bumped by every delete in its own transaction: a replica
-- serves a chain from its history cache only when it has heard (by NOTIFY) of every deletion counted here.
CREATE TABLE deletion_epochs (
    tenant TEXT PRIMARY KEY,
    epoch  BIGINT NOT NULL
);
