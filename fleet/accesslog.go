package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// The access log is hash-chained: each entry's Hash is the sha256 of its
// canonical form (ChainHash), which includes Prev, the previous entry's
// Hash ("" for the first). A store sets Seq, Prev and Hash as it appends.

// ChainHash is the hash of e's canonical form: Seq, Time (RFC 3339, UTC,
// nanoseconds), Actor, Action, Target and Prev as a JSON array.
func ChainHash(e AccessEntry) string {
	b, _ := json.Marshal([]any{e.Seq, e.Time.UTC().Format(time.RFC3339Nano), e.Actor, e.Action, e.Target, e.Prev})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// VerifyAccessLog checks the chain: entries numbered from 1, each linked
// to the one before and hashed right. The error names the first bad one.
func VerifyAccessLog(ctx context.Context, st Store) (int, error) {
	log, err := st.AccessLog(ctx)
	if err != nil {
		return 0, err
	}
	prev := ""
	for i, e := range log {
		switch {
		case e.Seq != int64(i+1):
			return i, fmt.Errorf("access log entry %d has sequence number %d: an entry is missing or was inserted", i+1, e.Seq)
		case e.Prev != prev:
			return i, fmt.Errorf("access log entry %d does not follow entry %d (its prev hash differs)", e.Seq, e.Seq-1)
		case ChainHash(e) != e.Hash:
			return i, fmt.Errorf("access log entry %d was changed (its hash does not match)", e.Seq)
		}
		prev = e.Hash
	}
	return len(log), nil
}
