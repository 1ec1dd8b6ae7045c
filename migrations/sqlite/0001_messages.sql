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

-- No index on created_at_ms: it halved write throughput. Timestamps rise with ids within a room,
-- so retention by age walks each room's oldest rows in primary-key order instead.

-- The last id handed out per room, so ids keep increasing after a restart even when retention
-- has deleted every stored message of the room.
CREATE TABLE rooms (
    name    TEXT    NOT NULL PRIMARY KEY,
    last_id INTEGER NOT NULL
) WITHOUT ROWID;
