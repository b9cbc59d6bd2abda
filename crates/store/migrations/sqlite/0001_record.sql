-- The record of deployments. Times are Unix milliseconds.
CREATE TABLE deployments (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT    NOT NULL,
    environment      TEXT    NOT NULL,
    plan_name        TEXT    NOT NULL,
    plan_file        TEXT    NOT NULL,
    plan_hash        TEXT    NOT NULL,
    plan_source      TEXT    NOT NULL,
    version          TEXT,
    requester        TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    scheduled_for    INTEGER,
    rollback_of      INTEGER REFERENCES deployments(id),
    summary          TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    params           TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX deployments_by_environment ON deployments (environment, id);
CREATE INDEX deployments_by_state ON deployments (state);

CREATE TABLE step_runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id INTEGER NOT NULL REFERENCES deployments(id),
    step_id       TEXT    NOT NULL,
    target        TEXT    NOT NULL,
    phase         TEXT    NOT NULL,
    attempt       INTEGER NOT NULL,
    state         TEXT    NOT NULL,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    exit_code     INTEGER,
    output        TEXT    NOT NULL DEFAULT '',
    message       TEXT
);
CREATE INDEX step_runs_by_deployment ON step_runs (deployment_id, id);

-- Append-only audit log; each row's hash covers the previous row's hash.
CREATE TABLE events (
    seq           INTEGER PRIMARY KEY,
    deployment_id INTEGER,
    at            INTEGER NOT NULL,
    kind          TEXT    NOT NULL,
    actor         TEXT    NOT NULL,
    data          TEXT    NOT NULL,
    prev_hash     TEXT    NOT NULL,
    hash          TEXT    NOT NULL
);
CREATE INDEX events_by_deployment ON events (deployment_id, seq);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- The end of the chain; updating it first in a transaction serialises appends across processes.
CREATE TABLE chain_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT    NOT NULL
);
INSERT INTO chain_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE inventory (
    environment      TEXT    NOT NULL,
    target           TEXT    NOT NULL,
    current_version  TEXT,
    previous_version TEXT,
    kept             TEXT    NOT NULL DEFAULT '[]',
    deployment_id    INTEGER,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (environment, target)
);

CREATE TABLE locks (
    environment   TEXT PRIMARY KEY,
    holder        TEXT    NOT NULL,
    deployment_id INTEGER,
    pid           INTEGER NOT NULL,
    host          TEXT    NOT NULL,
    acquired_at   INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);

CREATE TABLE confirmations (
    deployment_id INTEGER NOT NULL REFERENCES deployments(id),
    step_id       TEXT    NOT NULL,
    actor         TEXT    NOT NULL,
    at            INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, step_id)
);
