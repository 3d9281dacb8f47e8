-- Installation-wide settings as key/value pairs.
CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A random identity for this installation (shown in /metrics and logs).
INSERT INTO settings (key, value) VALUES ('installation_id', md5(random()::text || clock_timestamp()::text));
