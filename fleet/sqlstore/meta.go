package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/beckmanconnect/bcupdate/fleet"
)

var _ fleet.MetaStore = (*Store)(nil)

// Meta returns the value of name (fleet.ErrNotFound if none).
func (s *Store) Meta(ctx context.Context, name string) ([]byte, error) {
	var v []byte
	err := s.r.QueryRowContext(ctx, s.q(`SELECT value FROM meta WHERE name = ?`), name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("meta %s: %w", name, fleet.ErrNotFound)
	}
	return v, err
}

// PutMetaOnce stores value under name unless name has a value, and
// returns the value name then has. The insert and the read are one
// transaction on the writer, and ON CONFLICT DO NOTHING makes two
// processes that insert at once agree: the second reads the first's.
func (s *Store) PutMetaOnce(ctx context.Context, name string, value []byte) ([]byte, error) {
	var v []byte
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`), name, value); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, s.q(`SELECT value FROM meta WHERE name = ?`), name).Scan(&v)
	})
	if err != nil {
		return nil, fmt.Errorf("meta %s: %w", name, err)
	}
	return v, nil
}
