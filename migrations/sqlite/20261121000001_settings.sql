-- Installation-wide settings as key/value pairs.
CREATE TABLE settings (
    key        TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- A random identity for this installation (shown in /metrics and logs).
INSERT INTO settings (key, value) VALUES ('installation_id', lower(hex(randomblob(16))));
