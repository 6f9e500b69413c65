-- The dashboard's queries read columns and indexes instead of every
-- device's JSON (issue 17). Nothing here is written by a heartbeat, so a
-- heartbeat stays one narrow UPDATE of device_seen (on PostgreSQL, an
-- in-place HOT update: no column it changes is indexed).
--
-- devices: the instrument's model and the search keys (device ID,
-- instrument ID and serial number in ASCII lower case), set at enrollment
-- and never changed; an index of the revoked devices (few).
-- device_seen: the poll interval of the last full report, so that online
-- is decided from this narrow table alone (unindexed: full reports write
-- it, heartbeats do not).
-- components: what a rollout counts (channel, staged and failed versions,
-- rolled back by hand, the reason), and one index in the order the
-- rollouts page groups by, so its counts are read from the index.

-- +goose Up
ALTER TABLE devices ADD COLUMN model TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN search_id TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN search_instrument TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN search_serial TEXT NOT NULL DEFAULT '';
UPDATE devices SET model = COALESCE(json_extract(instrument, '$.model'), ''),
  search_id = LOWER(id),
  search_instrument = LOWER(COALESCE(json_extract(instrument, '$.id'), '')),
  search_serial = LOWER(COALESCE(json_extract(instrument, '$.serial'), ''));
CREATE INDEX devices_model ON devices (model, id);
CREATE INDEX devices_search_id ON devices (search_id);
CREATE INDEX devices_search_instrument ON devices (search_instrument);
CREATE INDEX devices_search_serial ON devices (search_serial);
CREATE INDEX devices_revoked ON devices (id) WHERE revoked IS NOT NULL;

ALTER TABLE device_seen ADD COLUMN poll_interval BIGINT NOT NULL DEFAULT 0;
UPDATE device_seen SET poll_interval = COALESCE((SELECT CAST(json_extract(state, '$.poll_interval') AS INTEGER)
  FROM devices WHERE devices.id = device_seen.device_id), 0);

ALTER TABLE components ADD COLUMN channel TEXT NOT NULL DEFAULT '';
ALTER TABLE components ADD COLUMN staged TEXT NOT NULL DEFAULT '';
ALTER TABLE components ADD COLUMN failed TEXT NOT NULL DEFAULT '';
ALTER TABLE components ADD COLUMN by_hand INTEGER NOT NULL DEFAULT 0;
ALTER TABLE components ADD COLUMN reason TEXT NOT NULL DEFAULT '';
DELETE FROM components;
INSERT INTO components (device_id, name, installed, state, channel, staged, failed, by_hand, reason)
  SELECT d.id, json_extract(c.value, '$.name'), COALESCE(json_extract(c.value, '$.installed'), ''),
    COALESCE(json_extract(c.value, '$.state'), ''), COALESCE(json_extract(c.value, '$.channel'), ''),
    COALESCE(json_extract(c.value, '$.staged'), ''), COALESCE(json_extract(c.value, '$.failed'), ''),
    CASE WHEN json_extract(c.value, '$.by_hand') THEN 1 ELSE 0 END, COALESCE(json_extract(c.value, '$.reason'), '')
  FROM devices d, json_each(d.state, '$.components') c;
CREATE INDEX components_tally ON components (name, channel, installed, staged, failed, state, by_hand);

-- +goose Down
DROP INDEX components_tally;
ALTER TABLE components DROP COLUMN reason;
ALTER TABLE components DROP COLUMN by_hand;
ALTER TABLE components DROP COLUMN failed;
ALTER TABLE components DROP COLUMN staged;
ALTER TABLE components DROP COLUMN channel;
ALTER TABLE device_seen DROP COLUMN poll_interval;
DROP INDEX devices_revoked;
DROP INDEX devices_search_serial;
DROP INDEX devices_search_instrument;
DROP INDEX devices_search_id;
DROP INDEX devices_model;
ALTER TABLE devices DROP COLUMN search_serial;
ALTER TABLE devices DROP COLUMN search_instrument;
ALTER TABLE devices DROP COLUMN search_id;
ALTER TABLE devices DROP COLUMN model;
