-- People. Credentials live in the directory (built-in table below, or LDAP).
CREATE TABLE users (
    id                    BIGSERIAL PRIMARY KEY,
    username              TEXT NOT NULL UNIQUE,
    email                 TEXT NOT NULL UNIQUE,
    display_name          TEXT NOT NULL,
    role                  TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('admin', 'user')),
    status                TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'active', 'disabled')),
    vpn_enabled           BOOLEAN NOT NULL DEFAULT TRUE,
    -- The directory's hash of the password chosen at registration, kept only
    -- until the address is confirmed and the directory entry exists.
    pending_password_hash TEXT,
    created_at            TIMESTAMPTZ NOT NULL,
    activated_at          TIMESTAMPTZ
);

-- The built-in directory: argon2id hashes.
CREATE TABLE local_credentials (
    user_id       BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    password_hash TEXT NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

-- Single-use links sent by mail: address confirmation and password reset.
CREATE TABLE email_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('confirm', 'reset')),
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose);
