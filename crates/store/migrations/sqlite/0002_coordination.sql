-- People, their roles and API tokens; approval decisions; break-glass; risk at request time.
CREATE TABLE users (
    name       TEXT PRIMARY KEY,
    roles      TEXT    NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    disabled   INTEGER NOT NULL DEFAULT 0
);

-- Tokens are stored as SHA-256 hashes; the token itself is shown once, when created.
CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    user_name    TEXT    NOT NULL REFERENCES users(name),
    name         TEXT    NOT NULL,
    hash         TEXT    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
);

CREATE TABLE decisions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id INTEGER NOT NULL REFERENCES deployments(id),
    approver      TEXT    NOT NULL,
    approve       INTEGER NOT NULL,
    reason        TEXT,
    plan_hash     TEXT    NOT NULL,
    at            INTEGER NOT NULL
);
CREATE INDEX decisions_by_deployment ON decisions (deployment_id, id);

ALTER TABLE deployments ADD COLUMN break_glass TEXT;
ALTER TABLE deployments ADD COLUMN risk TEXT;
