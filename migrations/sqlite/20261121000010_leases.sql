-- Leasing (thesis §5.2): who may draw from a pool, for how long, how many;
-- a host's lease; the audit log.

-- Usernames allowed to draw from the pool (JSON array); empty: everyone.
ALTER TABLE pools ADD COLUMN access TEXT NOT NULL DEFAULT '[]';
-- Lease length in hours: the default given at allocation, and the most an
-- extension may reach. NULL: no end / no cap.
ALTER TABLE pools ADD COLUMN default_lease_hours INTEGER;
ALTER TABLE pools ADD COLUMN max_lease_hours INTEGER;
-- Hosts one person may hold from this pool at once; NULL: no limit here.
ALTER TABLE pools ADD COLUMN max_per_user INTEGER;
-- A released host is installed afresh (with the pool's default templates)
-- before the next holder gets it.
ALTER TABLE pools ADD COLUMN clean_install INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pools ADD COLUMN system_template_id INTEGER REFERENCES templates (id) ON DELETE SET NULL;
ALTER TABLE pools ADD COLUMN unattended_template_id INTEGER REFERENCES templates (id) ON DELETE SET NULL;

ALTER TABLE hosts ADD COLUMN lease_started_at TEXT;
-- NULL while held: no end.
ALTER TABLE hosts ADD COLUMN lease_ends_at TEXT;
-- Reminders already sent for the current lease end (0, 1, 2…).
ALTER TABLE hosts ADD COLUMN lease_reminders INTEGER NOT NULL DEFAULT 0;
-- Out of allocation (an administrator's repair).
ALTER TABLE hosts ADD COLUMN maintenance INTEGER NOT NULL DEFAULT 0;
CREATE INDEX hosts_lease_ends ON hosts (lease_ends_at);

-- Hosts one person may hold at once, over all pools; NULL: the default
-- (`leases.max_hosts_per_user`).
ALTER TABLE users ADD COLUMN max_hosts INTEGER;

-- Who did what to which host, when and from where.
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT NOT NULL,
    -- NULL: Bootler itself (expiry).
    actor_id  INTEGER REFERENCES users (id) ON DELETE SET NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    host_id   INTEGER REFERENCES hosts (id) ON DELETE SET NULL,
    host_name TEXT NOT NULL DEFAULT '',
    -- The person the action concerns (the new holder, the one released).
    subject   TEXT,
    detail    TEXT NOT NULL DEFAULT '',
    source_ip TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_host ON audit_log (host_id, id);
CREATE INDEX audit_log_actor ON audit_log (actor_id, id);
