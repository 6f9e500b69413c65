-- PostgreSQL's migration 3 leaves room in the devices table's pages for
-- in-place updates; SQLite has no such setting. This one keeps the two
-- schemas' versions in step.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
