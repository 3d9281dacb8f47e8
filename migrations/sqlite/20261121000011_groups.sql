-- Groups of the built-in directory (LDAP keeps its own under ldap.groups_dn):
-- a pool's access may name a group as `@name`.
CREATE TABLE user_groups (
    name TEXT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (name, user_id)
);
CREATE INDEX user_groups_user ON user_groups (user_id);
