package coupon

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"couponpush/template"
)

// ReconcileResult is what one Reconcile run found and did.
type ReconcileResult struct {
	Templates int   // templates checked
	Settled   int   // claims in flight past the deadline, settled from MySQL
	Drift     int64 // sum over sub-stocks of |drift| found, before repair
	Repaired  int64 // sum of |drift| repaired
	Missing   int   // sub-stocks missing in Redis (not repaired; see README)
}

// subSnapshot is one sub-stock read atomically.
type subSnapshot struct {
	now              int64 // Redis ms
	exists           bool
	left, quota, seq int64
	holds            map[string]hold // request_id → hold
}

type hold struct {
	user int64
	slot int
	seq  int64
	at   int64
}

func (s *Service) snapshot(ctx context.Context, key string) (subSnapshot, error) {
	vals, err := snapshotScript.Run(ctx, s.rdb, []string{key}).StringSlice()
	if err != nil || len(vals) == 0 {
		return subSnapshot{}, fmt.Errorf("coupon: read sub-stock %s: %w", key, err)
	}
	snap := subSnapshot{holds: map[string]hold{}, exists: len(vals) > 1}
	snap.now, _ = strconv.ParseInt(vals[0], 10, 64)
	for i := 1; i+1 < len(vals); i += 2 {
		f, v := vals[i], vals[i+1]
		switch {
		case f == "left":
			snap.left, _ = strconv.ParseInt(v, 10, 64)
		case f == "quota":
			snap.quota, _ = strconv.ParseInt(v, 10, 64)
		case f == "seq":
			snap.seq, _ = strconv.ParseInt(v, 10, 64)
		case strings.HasPrefix(f, "h:"):
			p := strings.Split(v, "|")
			if len(p) != 4 {
				continue
			}
			var h hold
			h.user, _ = strconv.ParseInt(p[0], 10, 64)
			h.slot, _ = strconv.Atoi(p[1])
			h.seq, _ = strconv.ParseInt(p[2], 10, 64)
			h.at, _ = strconv.ParseInt(p[3], 10, 64)
			snap.holds[f[2:]] = h
		}
	}
	return snap, nil
}

// Reconcile checks every template whose grab_end is within RetainAfterEnd
// (at most 1,000, latest first); see ReconcileTemplate.
func (s *Service) Reconcile(ctx context.Context) (ReconcileResult, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT id FROM templates WHERE grab_end > ? ORDER BY grab_end DESC LIMIT 1000",
		norm(s.now().Add(-s.cfg.RetainAfterEnd)))
	if err != nil {
		return ReconcileResult{}, fmt.Errorf("coupon: list templates to reconcile: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return ReconcileResult{}, fmt.Errorf("coupon: list templates to reconcile: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return ReconcileResult{}, fmt.Errorf("coupon: list templates to reconcile: %w", err)
	}
	var total ReconcileResult
	var errs []error
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		r, err := s.ReconcileTemplate(ctx, id)
		total.Templates++
		total.Settled += r.Settled
		total.Drift += r.Drift
		total.Repaired += r.Repaired
		total.Missing += r.Missing
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

// ReconcileTemplate compares template id's Redis stock with MySQL and
// repairs the difference. In order:
//
//  1. Stock adds not yet credited to Redis are credited (idempotently).
//  2. Claims in flight longer than ReconcileDeadline are settled: by then
//     no write of theirs can commit, so MySQL has the answer: a row means
//     the coupon is issued (the hold is dropped, the reservation marked
//     done), no row means it never will be (slot and coupon given back).
//  3. For each sub-stock, from one atomic snapshot (left, quota, seq and
//     its holds) and MySQL's rows of that sub-stock with take_seq ≤ seq:
//     drift = quota − left − holds without a row − rows. Takes after the
//     snapshot have a larger seq, so load does not show as drift.
//  4. A drift is repaired by moving left, only if the sub-stock's seq is
//     still the snapshot's (no take since), never by overwriting it.
func (s *Service) ReconcileTemplate(ctx context.Context, id int64) (ReconcileResult, error) {
	var res ReconcileResult
	t, err := s.templates.Get(ctx, id)
	if err != nil {
		return res, err
	}
	if err := s.ApplyStockAdds(ctx, t); err != nil {
		return res, err
	}
	snaps := make([]subSnapshot, t.SubStocks)
	for i := range snaps {
		key := s.keys.sub(t.ID, i)
		snap, err := s.snapshot(ctx, key)
		if err != nil {
			return res, err
		}
		settled := false
		for rid, h := range snap.holds {
			if snap.now-h.at <= s.cfg.ReconcileDeadline.Milliseconds() {
				continue
			}
			if err := s.settleHold(ctx, t, rid, h); err != nil {
				return res, err
			}
			res.Settled++
			settled = true
		}
		if settled {
			if snap, err = s.snapshot(ctx, key); err != nil {
				return res, err
			}
		}
		snaps[i] = snap
	}
	// Rows per sub-stock up to each snapshot's seq.
	var q strings.Builder
	args := make([]any, 0, 2*t.SubStocks+1)
	q.WriteString("SELECT ")
	for i, snap := range snaps {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString("COALESCE(SUM(sub = ? AND take_seq <= ?), 0)")
		args = append(args, i, snap.seq)
	}
	q.WriteString(" FROM coupons WHERE template_id = ?")
	args = append(args, t.ID)
	counts := make([]int64, t.SubStocks)
	dest := make([]any, t.SubStocks)
	for i := range counts {
		dest[i] = &counts[i]
	}
	if err := s.db.QueryRowContext(ctx, q.String(), args...).Scan(dest...); err != nil {
		return res, fmt.Errorf("coupon: count coupons of template %d: %w", t.ID, err)
	}
	// Holds whose rows are already in MySQL count as rows, not in flight.
	var rids []string
	for _, snap := range snaps {
		for rid := range snap.holds {
			rids = append(rids, rid)
		}
	}
	written, err := s.written(ctx, t.ID, rids)
	if err != nil {
		return res, err
	}
	for i, snap := range snaps {
		if !snap.exists {
			res.Missing++
			s.log.ErrorContext(ctx, "coupon sub-stock missing in Redis", "template_id", t.ID, "sub", i)
			continue
		}
		inFlight := int64(0)
		for rid := range snap.holds {
			if !written[rid] {
				inFlight++
			}
		}
		drift := snap.quota - snap.left - inFlight - counts[i]
		if drift == 0 {
			continue
		}
		res.Drift += abs(drift)
		s.log.WarnContext(ctx, "coupon stock drift", "template_id", t.ID, "sub", i, "drift", drift,
			"quota", snap.quota, "left", snap.left, "in_flight", inFlight, "issued", counts[i])
		out, err := repairScript.Run(ctx, s.rdb, []string{s.keys.sub(t.ID, i)}, snap.seq, drift).Int64Slice()
		if err != nil {
			return res, fmt.Errorf("coupon: repair sub-stock %d of template %d: %w", i, t.ID, err)
		}
		if len(out) == 2 && out[0] == repairApplied {
			res.Repaired += abs(drift)
		}
	}
	if res.Repaired > 0 {
		s.clearHints(t.ID)
	}
	return res, nil
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// written reports which of rids template t has rows for.
func (s *Service) written(ctx context.Context, template int64, rids []string) (map[string]bool, error) {
	out := map[string]bool{}
	for len(rids) > 0 {
		chunk := rids[:min(len(rids), 500)]
		rids = rids[len(chunk):]
		q := "SELECT request_id FROM coupons WHERE template_id = ? AND request_id IN (?" + strings.Repeat(",?", len(chunk)-1) + ")"
		args := make([]any, 0, len(chunk)+1)
		args = append(args, template)
		for _, r := range chunk {
			args = append(args, r)
		}
		rows, err := s.db.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("coupon: look up claims in flight: %w", err)
		}
		for rows.Next() {
			var rid string
			if err := rows.Scan(&rid); err != nil {
				rows.Close()
				return nil, fmt.Errorf("coupon: look up claims in flight: %w", err)
			}
			out[rid] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("coupon: look up claims in flight: %w", err)
		}
	}
	return out, nil
}

// settleHold settles a claim found by its hold (see settle); the user's
// reservation, if it is still there, is settled with it.
func (s *Service) settleHold(ctx context.Context, t template.Template, rid string, h hold) error {
	raw, err := s.rdb.HGet(ctx, s.keys.user(t.ID, h.user), "r:"+rid).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("coupon: read reservation %q: %w", rid, err)
	}
	r := reservation{raw: "-", slot: h.slot}
	if err == nil {
		if r, err = parseReservation(raw); err != nil {
			return err
		}
	}
	return s.settle(ctx, t, h.user, rid, r)
}
