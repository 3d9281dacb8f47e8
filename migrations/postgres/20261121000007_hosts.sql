-- Pools group hosts for allocation (more columns come with leasing).
CREATE TABLE pools (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL
);

-- Physical nodes. A MAC that calls the boot endpoint for the first time
-- becomes a host in state `discovered`; enrolling it into a pool makes it
-- `local` (boots from its disk until marked for an install).
CREATE TABLE hosts (
    id               BIGSERIAL PRIMARY KEY,
    name             TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'discovered'
                     CHECK (state IN ('discovered', 'local', 'install_pending', 'installing', 'installed', 'failed')),
    pool_id          BIGINT REFERENCES pools (id) ON DELETE SET NULL,
    holder_id        BIGINT REFERENCES users (id) ON DELETE SET NULL,
    -- The installer's network interface (`host.interface`), e.g. eth0.
    interface        TEXT NOT NULL DEFAULT 'eth0',
    -- JSON object (`vars` in templates).
    vars             TEXT NOT NULL DEFAULT '{}',
    last_seen_at     TIMESTAMPTZ,
    last_ip          TEXT,
    state_changed_at TIMESTAMPTZ NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX hosts_state ON hosts (state);
CREATE INDEX hosts_pool ON hosts (pool_id);
CREATE INDEX hosts_holder ON hosts (holder_id);

-- A host's network interfaces: each MAC belongs to one host.
CREATE TABLE host_macs (
    mac     TEXT PRIMARY KEY NOT NULL,
    host_id BIGINT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE
);
CREATE INDEX host_macs_host ON host_macs (host_id);

-- A host's timeline: every boot request, what was served, state changes,
-- render errors.
CREATE TABLE host_events (
    id        BIGSERIAL PRIMARY KEY,
    host_id   BIGINT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    at        TIMESTAMPTZ NOT NULL,
    source_ip TEXT,
    kind      TEXT NOT NULL,
    detail    TEXT NOT NULL
);
CREATE INDEX host_events_host ON host_events (host_id, id);
