-- What every report changes (the counter, the time it was received and,
-- for a full report, the digest heartbeats are compared with) moves out of
-- devices into a narrow table of its own, as on PostgreSQL (the two
-- schemas stay the same shape): a heartbeat no longer rewrites the devices
-- row with its sealed enrollee and state, and checking one reads the digest
-- from a column instead of parsing the state.

-- +goose Up
CREATE TABLE device_seen (
  device_id TEXT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
  counter   BIGINT NOT NULL DEFAULT 0,
  last_seen BIGINT NOT NULL DEFAULT 0,
  digest    TEXT NOT NULL DEFAULT ''
);
INSERT INTO device_seen (device_id, counter, last_seen, digest)
  SELECT id, counter, last_seen, COALESCE(json_extract(state, '$.digest'), '') FROM devices;
ALTER TABLE devices DROP COLUMN counter;
ALTER TABLE devices DROP COLUMN last_seen;

-- +goose Down
ALTER TABLE devices ADD COLUMN counter BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN last_seen BIGINT NOT NULL DEFAULT 0;
UPDATE devices SET counter = COALESCE((SELECT counter FROM device_seen WHERE device_id = devices.id), 0),
  last_seen = COALESCE((SELECT last_seen FROM device_seen WHERE device_id = devices.id), 0);
DROP TABLE device_seen;
