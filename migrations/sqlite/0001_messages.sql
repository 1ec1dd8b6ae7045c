-- Chat history. Ids are per room and assigned by the server when a message is published, so the
-- primary key is (room, id) and rows cluster by room in id order (WITHOUT ROWID).
CREATE TABLE messages (
    room          TEXT    NOT NULL,
    id            INTEGER NOT NULL,
    user_name     TEXT    NOT NULL,
    text          TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (room, id)
) WITHOUT ROWID;

-- Retention by age scans by time.
CREATE INDEX messages_created_at ON messages (created_at_ms);

-- The last id handed out per room, so ids keep increasing after a restart even when retention
-- has deleted every stored message of the room.
CREATE TABLE rooms (
    name    TEXT    NOT NULL PRIMARY KEY,
    last_id INTEGER NOT NULL
) WITHOUT ROWID;
