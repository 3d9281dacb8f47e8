-- Virtual machines (thesis §5.2): what the owner asked (hostname, flavor,
-- image, SSH key), the resources the flavor gave, where the VM lives on the
-- backend, and where it stands.
CREATE TABLE instances (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id    INTEGER NOT NULL REFERENCES users (id),
    hostname    TEXT NOT NULL,
    flavor      TEXT NOT NULL,
    image       TEXT NOT NULL,
    vcpus       INTEGER NOT NULL,
    memory_mib  INTEGER NOT NULL,
    disk_gib    INTEGER NOT NULL,
    ssh_key     TEXT NOT NULL,
    -- `libvirt` or `openstack`, and the backend's id once it has one.
    backend     TEXT NOT NULL,
    backend_id  TEXT,
    -- creating, running, stopped, starting, stopping, destroying, failed, missing
    state       TEXT NOT NULL,
    -- JSON list of IP addresses.
    addresses   TEXT NOT NULL DEFAULT '[]',
    error       TEXT,
    -- The image's login user, for the SSH command shown.
    login       TEXT,
    created_at  TEXT NOT NULL,
    state_at    TEXT NOT NULL,
    UNIQUE (owner_id, hostname)
);
CREATE INDEX instances_state ON instances (state);
