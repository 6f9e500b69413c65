-- The fleet store's first schema (PostgreSQL). Times are Unix nanoseconds
-- (UTC); JSON columns hold what no query filters on. Personal data lives
-- only in devices.sealed (AES-256-GCM, fleet/seal.go) and its keyed hash.

-- +goose Up
CREATE TABLE tokens (
  id      TEXT PRIMARY KEY,
  site    TEXT NOT NULL,
  hash    BYTEA NOT NULL UNIQUE,
  created BIGINT NOT NULL,
  expires BIGINT NOT NULL,
  uses    INTEGER NOT NULL,
  revoked INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE devices (
  id         TEXT PRIMARY KEY,
  site       TEXT NOT NULL,
  public_key BYTEA NOT NULL UNIQUE,
  enrolled   BIGINT NOT NULL,
  revoked    BIGINT,
  sealed     BYTEA NOT NULL,
  email_hash BYTEA NOT NULL,
  instrument TEXT NOT NULL,
  replaces   TEXT NOT NULL DEFAULT '',
  counter    BIGINT NOT NULL DEFAULT 0,
  last_seen  BIGINT NOT NULL DEFAULT 0,
  state      TEXT NOT NULL
);
CREATE INDEX devices_site ON devices (site);
CREATE INDEX devices_email_hash ON devices (email_hash);

CREATE TABLE components (
  device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
  name      TEXT NOT NULL,
  installed TEXT NOT NULL,
  state     TEXT NOT NULL,
  PRIMARY KEY (device_id, name)
);
CREATE INDEX components_installed ON components (name, installed);
CREATE INDEX components_state ON components (name, state);

CREATE TABLE access_log (
  seq    BIGINT PRIMARY KEY,
  time   BIGINT NOT NULL,
  actor  TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  prev   TEXT NOT NULL,
  hash   TEXT NOT NULL
);

-- +goose Down
DROP TABLE access_log;
DROP TABLE components;
DROP TABLE devices;
DROP TABLE tokens;
