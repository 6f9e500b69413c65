-- Heartbeats (most reports) change only devices.counter and last_seen,
-- which no index covers: with free room in each page PostgreSQL updates
-- such a row in place of its page (a HOT update), without touching the
-- four indexes or writing their WAL. New pages keep 30% free for it;
-- existing ones get it as VACUUM FULL or pg_repack rewrites them.

-- +goose Up
ALTER TABLE devices SET (fillfactor = 70);

-- +goose Down
ALTER TABLE devices RESET (fillfactor);
