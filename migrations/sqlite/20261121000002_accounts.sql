-- People. Credentials live in the directory (built-in table below, or LDAP).
CREATE TABLE users (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    username              TEXT NOT NULL UNIQUE,
    email                 TEXT NOT NULL UNIQUE,
    display_name          TEXT NOT NULL,
    role                  TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('admin', 'user')),
    status                TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'active', 'disabled')),
    vpn_enabled           BOOLEAN NOT NULL DEFAULT 1,
    -- The directory's hash of the password chosen at registration, kept only
    -- until the address is confirmed and the directory entry exists.
    pending_password_hash TEXT,
    created_at            TEXT NOT NULL,
    activated_at          TEXT
);

-- The built-in directory: argon2id hashes.
CREATE TABLE local_credentials (
    user_id       INTEGER PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    password_hash TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

-- Single-use links sent by mail: address confirmation and password reset.
CREATE TABLE email_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('confirm', 'reset')),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
);
CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose);
