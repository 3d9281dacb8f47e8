-- VPN sessions as OpenVPN's connect hooks report them (`bootler vpn-connect`,
-- `bootler vpn-disconnect`). The username stays when the account goes.
CREATE TABLE vpn_sessions (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id          INTEGER REFERENCES users(id) ON DELETE SET NULL,
    username         TEXT NOT NULL,
    real_address     TEXT NOT NULL,
    virtual_address  TEXT NOT NULL,
    connected_at     TEXT NOT NULL,
    disconnected_at  TEXT,
    bytes_received   INTEGER NOT NULL DEFAULT 0,
    bytes_sent       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX vpn_sessions_user ON vpn_sessions (user_id, id);
CREATE INDEX vpn_sessions_open ON vpn_sessions (username, virtual_address) WHERE disconnected_at IS NULL;
