-- Power control: each host's drivers (a JSON list, BMC passwords sealed),
-- the state last read, and the last action with its outcome.
ALTER TABLE hosts ADD COLUMN power TEXT NOT NULL DEFAULT '[]';
ALTER TABLE hosts ADD COLUMN power_state TEXT;
ALTER TABLE hosts ADD COLUMN power_state_at TIMESTAMPTZ;
ALTER TABLE hosts ADD COLUMN power_action TEXT;
ALTER TABLE hosts ADD COLUMN power_action_at TIMESTAMPTZ;
-- `queued`, `sent`, `confirmed` or `failed: <reason>`.
ALTER TABLE hosts ADD COLUMN power_result TEXT;

-- Scheduled power-ons per pool, to pace them (power.starts_per_window).
CREATE TABLE power_starts (
    pool_id BIGINT NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    at TIMESTAMPTZ NOT NULL
);
CREATE INDEX power_starts_pool_at ON power_starts (pool_id, at);
