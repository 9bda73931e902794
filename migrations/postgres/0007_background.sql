-- Background responses that wait to run or are running: the turn to run (`job`, JSON; a client's own upstream key
-- sealed), the server running it (`worker`) and until when its claim holds without renewal (`lease_until`, in ms
-- since the epoch), and the output so far (`progress`, JSON). The row goes when the response ends.
CREATE TABLE background_runs (
    response_id TEXT PRIMARY KEY REFERENCES responses (id) ON DELETE CASCADE,
    tenant      TEXT NOT NULL,
    job         TEXT NOT NULL,
    worker      TEXT,
    lease_until BIGINT,
    progress    TEXT
);
