package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet"
)

// Group commit. Every accepted report is a durable write (SQLite: WAL
// with synchronous=FULL, PostgreSQL: its commit), and a commit costs a
// flush of the log to disk: one flush per report caps a store at the
// disk's flushes per second. Reports that arrive while a commit is
// flushing therefore wait for the next one and share it: the batcher
// takes every report already waiting (at most maxBatch), applies each (a
// replayed, unknown or malformed one is refused before it writes
// anything, so it spoils none of the others), commits once, and then
// answers each. No
// report is answered before the commit that holds it is durable, and an
// idle store commits a lone report at once: batching costs no latency.

const maxBatch = 256

// batchTimeout bounds one batch's transaction.
const batchTimeout = 30 * time.Second

type saveReq struct {
	ctx  context.Context
	id   string
	u    fleet.ReportUpdate
	done chan error
}

type batcher struct {
	reqs chan *saveReq
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// startBatcher starts workers goroutines that commit reports (one for
// SQLite, whose single writer serializes commits anyway; a few for
// PostgreSQL, which flushes concurrent commits together itself).
func (s *Store) startBatcher(workers int) {
	b := &batcher{reqs: make(chan *saveReq), stop: make(chan struct{})}
	for range workers {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			for {
				var first *saveReq
				select {
				case first = <-b.reqs:
				case <-b.stop:
					return
				}
				batch := []*saveReq{first}
			drain:
				for len(batch) < maxBatch {
					select {
					case r := <-b.reqs:
						batch = append(batch, r)
					default:
						break drain
					}
				}
				s.commitBatch(batch)
			}
		}()
	}
	s.batch = b
}

// close stops the workers after the batch they commit (a second close
// does nothing).
func (b *batcher) close() {
	b.once.Do(func() { close(b.stop) })
	b.wg.Wait()
}

var errStoreClosed = errors.New("the store is closed")

// errMalformed marks a report refused by the store's own checks.
var errMalformed = errors.New("malformed report")

// refusal says whether err refuses one report (nothing was written for
// it) rather than failing the transaction.
func refusal(err error) bool {
	return errors.Is(err, fleet.ErrReplayed) || errors.Is(err, fleet.ErrNotFound) || errors.Is(err, errMalformed)
}

// SaveReport stores an accepted report if its counter is above the
// stored one (the check and the write are one statement), in the next
// group commit.
func (s *Store) SaveReport(ctx context.Context, id string, u fleet.ReportUpdate) error {
	r := &saveReq{ctx: ctx, id: id, u: u, done: make(chan error, 1)}
	select {
	case s.batch.reqs <- r:
	case <-s.batch.stop:
		return errStoreClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once taken, the request is answered after its commit: the caller
	// waits for that, so it never reports as failed what was stored.
	return <-r.done
}

// commitBatch applies a batch in one transaction, each report in its
// own savepoint, and answers every request after the commit.
func (s *Store) commitBatch(batch []*saveReq) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	rest := batch
	if s.postgres {
		// Heartbeats (most reports) in one statement: one round trip.
		rest = s.heartbeatsAtOnce(ctx, batch)
	}
	if len(rest) == 0 {
		return
	}
	errs := make([]error, len(rest))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for i, r := range rest {
			if err := r.ctx.Err(); err != nil {
				errs[i] = err
				continue
			}
			// A report is refused before its first write (replayed,
			// unknown, malformed), so a refusal leaves nothing to undo;
			// an error of the database fails the whole batch.
			errs[i] = s.saveReport(ctx, tx, r.id, r.u)
			if errs[i] != nil && !refusal(errs[i]) {
				return errs[i]
			}
		}
		return nil
	})
	for i, r := range rest {
		if err != nil {
			r.done <- fmt.Errorf("store report: %w", err)
			continue
		}
		r.done <- errs[i]
	}
}

// qHeartbeatsPG stores a group of heartbeats, one per device, and says
// for each device of the group whether its report was stored (its
// counter was above the stored one) or the device exists at all.
const qHeartbeatsPG = `WITH v AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS v(id, counter, last_seen)),
	u AS (UPDATE device_seen d SET counter = v.counter, last_seen = v.last_seen FROM v WHERE d.device_id = v.id AND d.counter < v.counter RETURNING d.device_id)
	SELECT d.device_id, d.device_id IN (SELECT device_id FROM u) FROM device_seen d WHERE d.device_id = ANY($1::text[])`

// heartbeatsAtOnce stores the batch's heartbeats (one per device; a
// second of the same device waits for the per-report path) with one
// UPDATE over arrays, committed on its own, and answers them; it returns
// the reports left for the per-report path.
func (s *Store) heartbeatsAtOnce(ctx context.Context, batch []*saveReq) []*saveReq {
	var hb, rest []*saveReq
	seen := map[string]bool{}
	for _, r := range batch {
		if r.u.Full || seen[r.id] || r.u.Counter > math.MaxInt64 || r.ctx.Err() != nil {
			rest = append(rest, r)
			continue
		}
		seen[r.id] = true
		hb = append(hb, r)
	}
	if len(hb) < 2 {
		return batch
	}
	ids := make([]string, len(hb))
	counters := make([]int64, len(hb))
	seenAt := make([]int64, len(hb))
	for i, r := range hb {
		ids[i], counters[i], seenAt[i] = r.id, int64(r.u.Counter), nanos(r.u.LastSeen)
	}
	stored := map[string]bool{}
	known := map[string]bool{}
	err := func() error {
		st, err := s.prepared(ctx, s.w, qHeartbeatsPG)
		if err != nil {
			return err
		}
		rows, err := st.QueryContext(ctx, ids, counters, seenAt)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var ok bool
			if err := rows.Scan(&id, &ok); err != nil {
				return err
			}
			known[id], stored[id] = true, ok
		}
		return rows.Err()
	}()
	for _, r := range hb {
		switch {
		case err != nil:
			r.done <- fmt.Errorf("store report: %w", err)
		case stored[r.id]:
			r.done <- nil
		case known[r.id]:
			r.done <- fleet.ErrReplayed
		default:
			r.done <- fmt.Errorf("device %s: %w", r.id, fleet.ErrNotFound)
		}
	}
	return rest
}
