-- Small named values the service keeps beside its records (fleet.MetaStore):
-- the AWS KMS key-encryption key's email-lookup key, wrapped by KMS (never
-- in plaintext; fleet/kms.go). A value is set once and never replaced.

-- +goose Up
CREATE TABLE meta (
  name  TEXT PRIMARY KEY,
  value BYTEA NOT NULL
);

-- +goose Down
DROP TABLE meta;
