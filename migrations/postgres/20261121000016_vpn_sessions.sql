-- VPN sessions as OpenVPN's connect hooks report them (`bootler vpn-connect`,
-- `bootler vpn-disconnect`). The username stays when the account goes.
CREATE TABLE vpn_sessions (
    id               BIGSERIAL PRIMARY KEY,
    user_id          BIGINT REFERENCES users(id) ON DELETE SET NULL,
    username         TEXT NOT NULL,
    real_address     TEXT NOT NULL,
    virtual_address  TEXT NOT NULL,
    connected_at     TIMESTAMPTZ NOT NULL,
    disconnected_at  TIMESTAMPTZ,
    bytes_received   BIGINT NOT NULL DEFAULT 0,
    bytes_sent       BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX vpn_sessions_user ON vpn_sessions (user_id, id);
CREATE INDEX vpn_sessions_open ON vpn_sessions (username, virtual_address) WHERE disconnected_at IS NULL;
