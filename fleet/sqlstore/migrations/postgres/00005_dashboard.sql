-- The dashboard's queries read columns and indexes instead of every
-- device's JSON (issue 17). Nothing here is written by a heartbeat, so a
-- heartbeat stays one narrow in-place (HOT) UPDATE of device_seen: no
-- column it changes is indexed. A full report changes devices.state only,
-- which no index covers either.
--
-- devices: the instrument's model and the search keys (device ID,
-- instrument ID and serial number in ASCII lower case, compared in byte
-- order, COLLATE "C", so that a prefix is one index range whatever the
-- database's locale), set at enrollment and never changed; an index of
-- the revoked devices (few).
-- device_seen: the poll interval of the last full report, so that online
-- is decided from this narrow table alone (unindexed: full reports write
-- it, heartbeats do not).
-- components: what a rollout counts (channel, staged and failed versions,
-- rolled back by hand, the reason), and one index in the order the
-- rollouts page groups by, so its counts are read from the index.

-- +goose Up
ALTER TABLE devices ADD COLUMN model TEXT NOT NULL DEFAULT '',
  ADD COLUMN search_id TEXT COLLATE "C" NOT NULL DEFAULT '',
  ADD COLUMN search_instrument TEXT COLLATE "C" NOT NULL DEFAULT '',
  ADD COLUMN search_serial TEXT COLLATE "C" NOT NULL DEFAULT '';
UPDATE devices SET model = COALESCE(instrument::jsonb ->> 'model', ''),
  search_id = translate(id, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'),
  search_instrument = translate(COALESCE(instrument::jsonb ->> 'id', ''), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'),
  search_serial = translate(COALESCE(instrument::jsonb ->> 'serial', ''), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
CREATE INDEX devices_model ON devices (model, id);
CREATE INDEX devices_search_id ON devices (search_id);
CREATE INDEX devices_search_instrument ON devices (search_instrument);
CREATE INDEX devices_search_serial ON devices (search_serial);
CREATE INDEX devices_revoked ON devices (id) WHERE revoked IS NOT NULL;

ALTER TABLE device_seen ADD COLUMN poll_interval BIGINT NOT NULL DEFAULT 0;
UPDATE device_seen s SET poll_interval = COALESCE((d.state::jsonb ->> 'poll_interval')::bigint, 0)
  FROM devices d WHERE d.id = s.device_id;

ALTER TABLE components ADD COLUMN channel TEXT NOT NULL DEFAULT '',
  ADD COLUMN staged TEXT NOT NULL DEFAULT '',
  ADD COLUMN failed TEXT NOT NULL DEFAULT '',
  ADD COLUMN by_hand INTEGER NOT NULL DEFAULT 0,
  ADD COLUMN reason TEXT NOT NULL DEFAULT '';
DELETE FROM components;
INSERT INTO components (device_id, name, installed, state, channel, staged, failed, by_hand, reason)
  SELECT d.id, c ->> 'name', COALESCE(c ->> 'installed', ''), COALESCE(c ->> 'state', ''), COALESCE(c ->> 'channel', ''),
    COALESCE(c ->> 'staged', ''), COALESCE(c ->> 'failed', ''), CASE WHEN c ->> 'by_hand' = 'true' THEN 1 ELSE 0 END,
    COALESCE(c ->> 'reason', '')
  FROM devices d, jsonb_array_elements(COALESCE(d.state::jsonb -> 'components', '[]'::jsonb)) AS c;
CREATE INDEX components_tally ON components (name, channel, installed, staged, failed, state, by_hand);

-- +goose Down
DROP INDEX components_tally;
ALTER TABLE components DROP COLUMN reason, DROP COLUMN by_hand, DROP COLUMN failed, DROP COLUMN staged, DROP COLUMN channel;
ALTER TABLE device_seen DROP COLUMN poll_interval;
DROP INDEX devices_revoked;
DROP INDEX devices_search_serial;
DROP INDEX devices_search_instrument;
DROP INDEX devices_search_id;
DROP INDEX devices_model;
ALTER TABLE devices DROP COLUMN search_serial, DROP COLUMN search_instrument, DROP COLUMN search_id, DROP COLUMN model;
