-- Retention removes a room's row from `rooms` once none of its messages are left, so rooms that
-- only ever existed in the store do not pile up. Their ids must still never be reused: the
-- highest last id of any removed row is kept here, and a room without a row continues above it.
-- One number for every pruned room instead of a tombstone each.
CREATE TABLE id_floor (
    only  INTEGER NOT NULL PRIMARY KEY CHECK (only = 1),
    floor INTEGER NOT NULL
);
INSERT INTO id_floor (only, floor) VALUES (1, 0);
