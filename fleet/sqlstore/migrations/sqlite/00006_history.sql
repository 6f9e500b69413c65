-- What the dashboard shows over time (issue 17).
--
-- rollout_history: each release's counts on each channel, recorded by the
-- dashboard once an hour (fleet/web, fleet.HistoryStore): the points of
-- the rollouts page's chart over time. The first record of an hour is kept
-- (every server of a store may record it); points older than 90 days are
-- deleted as new ones are recorded.
--
-- report_history: each device's last 50 full reports (what changed on it:
-- versions, states, its logs' lengths), written by the full report's own
-- transaction (statement, on PostgreSQL), which also deletes the 51st.
-- Heartbeats never write it. About 0.4 KiB a report: at most some 20 KiB a
-- device.

-- +goose Up
CREATE TABLE rollout_history (
  component   TEXT NOT NULL,
  channel     TEXT NOT NULL,
  version     TEXT NOT NULL,
  time        BIGINT NOT NULL,
  targeted    INTEGER NOT NULL,
  installed   INTEGER NOT NULL,
  staged      INTEGER NOT NULL,
  awaiting    INTEGER NOT NULL,
  failed      INTEGER NOT NULL,
  rolled_back INTEGER NOT NULL,
  silent      INTEGER NOT NULL,
  pending     INTEGER NOT NULL,
  PRIMARY KEY (component, channel, version, time)
);
CREATE INDEX rollout_history_time ON rollout_history (time);

CREATE TABLE report_history (
  device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
  counter   BIGINT NOT NULL,
  time      BIGINT NOT NULL,
  record    TEXT NOT NULL,
  PRIMARY KEY (device_id, counter)
);

-- +goose Down
DROP TABLE report_history;
DROP TABLE rollout_history;
