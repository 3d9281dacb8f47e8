-- Templates: `system` (an iPXE script) and `unattended` (any text),
-- global (owner_id NULL, managed by admins) or private to one person.
-- `body` and `version` are the current ones; every version is kept.
CREATE TABLE templates (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('system', 'unattended')),
    owner_id    BIGINT REFERENCES users (id) ON DELETE CASCADE,
    description TEXT NOT NULL DEFAULT '',
    version     INTEGER NOT NULL DEFAULT 1,
    body        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX templates_global_name ON templates (name) WHERE owner_id IS NULL;
CREATE UNIQUE INDEX templates_private_name ON templates (owner_id, name) WHERE owner_id IS NOT NULL;

CREATE TABLE template_versions (
    template_id BIGINT NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    body        TEXT NOT NULL,
    created_by  BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (template_id, version)
);
