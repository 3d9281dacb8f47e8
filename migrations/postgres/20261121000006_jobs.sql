-- The durable job queue: everything slow runs here (thesis §4.1, §5.3–5.5).
CREATE TABLE jobs (
    id               BIGSERIAL PRIMARY KEY,
    kind             TEXT NOT NULL,
    -- JSON.
    payload          TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    requested_by     BIGINT REFERENCES users (id) ON DELETE SET NULL,
    -- What it acts on, for people: ('host', '12'), ('user', 'ana'), …
    target_kind      TEXT,
    target_id        TEXT,
    -- At most one queued or running job per key (see the index below).
    dedup_key        TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    run_at           TIMESTAMPTZ NOT NULL,
    -- The worker holding a running job, until when (renewed by heartbeats).
    lease_owner      TEXT,
    lease_expires_at TIMESTAMPTZ,
    -- JSON, on success.
    result           TEXT,
    -- A sentence for a person, on failure (the last one while retrying).
    error            TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX jobs_ready ON jobs (state, run_at);
CREATE INDEX jobs_lease ON jobs (state, lease_expires_at);
CREATE INDEX jobs_requested_by ON jobs (requested_by, id);
CREATE UNIQUE INDEX jobs_dedup ON jobs (dedup_key) WHERE state IN ('queued', 'running');

-- What happened, addressed to a person: sent live over /ws, and kept a short
-- while so a browser that reconnects gets what it missed.
CREATE TABLE events (
    id         BIGSERIAL PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    -- JSON.
    data       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX events_user ON events (user_id, id);
CREATE INDEX events_created ON events (created_at);
