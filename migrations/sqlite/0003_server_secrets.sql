-- Secrets the server makes for itself on first start and keeps across restarts (e.g. the key
-- that signs resume tickets, so tickets issued before a restart still work after it).
CREATE TABLE server_secrets (
    name   TEXT NOT NULL PRIMARY KEY,
    secret BLOB NOT NULL
) WITHOUT ROWID;
