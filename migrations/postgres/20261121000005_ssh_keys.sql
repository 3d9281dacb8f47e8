-- People's SSH public keys: put on their nodes and VMs at install time.
CREATE TABLE ssh_keys (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- A name to tell keys apart (the key's comment unless one was given).
    name        TEXT NOT NULL,
    algorithm   TEXT NOT NULL,
    -- `algorithm base64` as it goes into authorized_keys.
    public_key  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    bits        INTEGER NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (user_id, fingerprint)
);
