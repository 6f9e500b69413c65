-- What every report changes (the counter, the time it was received and,
-- for a full report, the digest heartbeats are compared with) moves out of
-- devices into a narrow table of its own. A heartbeat used to rewrite the
-- whole devices row, about 2 KiB with the sealed enrollee and the state
-- JSON, into the WAL; now it rewrites about 100 bytes, and checking one
-- reads the digest from a column instead of parsing the state.

-- +goose Up
CREATE TABLE device_seen (
  device_id TEXT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
  counter   BIGINT NOT NULL DEFAULT 0,
  last_seen BIGINT NOT NULL DEFAULT 0,
  digest    TEXT NOT NULL DEFAULT ''
) WITH (fillfactor = 50);
INSERT INTO device_seen (device_id, counter, last_seen, digest)
  SELECT id, counter, last_seen, COALESCE(state::json->>'digest', '') FROM devices;
ALTER TABLE devices DROP COLUMN counter, DROP COLUMN last_seen;

-- +goose Down
ALTER TABLE devices ADD COLUMN counter BIGINT NOT NULL DEFAULT 0, ADD COLUMN last_seen BIGINT NOT NULL DEFAULT 0;
UPDATE devices d SET counter = s.counter, last_seen = s.last_seen FROM device_seen s WHERE s.device_id = d.id;
DROP TABLE device_seen;
