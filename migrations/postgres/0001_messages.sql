-- Chat history, as in the SQLite schema: ids are per room, assigned when a message is published,
-- so the primary key is (room, id) and a retried batch is skipped row by row (ON CONFLICT).
CREATE TABLE messages (
    room          TEXT   NOT NULL,
    id            BIGINT NOT NULL,
    user_name     TEXT   NOT NULL,
    text          TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (room, id)
);

-- The highest id a room has handed out: the writer only ever raises it, and ids continue above
-- it after a restart, also once retention has removed the messages themselves.
CREATE TABLE rooms (
    name    TEXT   NOT NULL PRIMARY KEY,
    last_id BIGINT NOT NULL
);

-- Retention removes a room's row once none of its messages are left; the highest last id of any
-- removed row is kept here, and a room without a row continues above it (as in SQLite).
CREATE TABLE id_floor (
    one   INTEGER NOT NULL PRIMARY KEY CHECK (one = 1),
    floor BIGINT  NOT NULL
);
INSERT INTO id_floor (one, floor) VALUES (1, 0);

-- Secrets the servers make for themselves and share (e.g. the resume-ticket key).
CREATE TABLE server_secrets (
    name   TEXT  NOT NULL PRIMARY KEY,
    secret BYTEA NOT NULL
);
