-- The rollout's current percent, as devices report it: each component's
-- row keeps the release its channel pointer named and the share it was
-- rolled out to when the device last verified it (TUF), and when that
-- full report arrived, with an index of the rows that carry one (agents
-- before this report nothing), newest last, so the newest report's
-- percent of a channel is one index probe. Full reports write these;
-- heartbeats never do.

-- +goose Up
ALTER TABLE components ADD COLUMN channel_release TEXT NOT NULL DEFAULT '';
ALTER TABLE components ADD COLUMN rollout_percent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE components ADD COLUMN reported BIGINT NOT NULL DEFAULT 0;
CREATE INDEX components_pointer ON components (name, channel, reported) WHERE rollout_percent > 0;

-- +goose Down
DROP INDEX components_pointer;
ALTER TABLE components DROP COLUMN reported;
ALTER TABLE components DROP COLUMN rollout_percent;
ALTER TABLE components DROP COLUMN channel_release;
