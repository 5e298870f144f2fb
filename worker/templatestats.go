package worker

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"
)

// pendingHorizon is how far ahead couponpush_template_pending_reminders
// looks: pending reminders due by now + pendingHorizon.
const pendingHorizon = time.Hour

// templateStats are the per-template counts the coupon role reads from
// MySQL for couponpush_template_pending_reminders and
// couponpush_template_subscribers.
type templateStats struct {
	pending     map[string]float64    // by template label
	subscribers map[[2]string]float64 // by template label, status
}

// readTemplateStats reads the subscription counts of the live templates
// (grab end not passed more than templateGrace ago): the first
// maxTemplateLabels by grab start get their own label, the rest and any
// pending reminder of a template not live count as "other".
func readTemplateStats(ctx context.Context, db *sql.DB, now time.Time) (templateStats, error) {
	st := templateStats{pending: map[string]float64{}, subscribers: map[[2]string]float64{}}
	rows, err := db.QueryContext(ctx, `SELECT id FROM templates WHERE grab_end > ? ORDER BY grab_start, id LIMIT ?`,
		now.Add(-templateGrace), maxTemplateLabels)
	if err != nil {
		return st, fmt.Errorf("live templates: %w", err)
	}
	labelled := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return st, fmt.Errorf("live templates: %w", err)
		}
		labelled[id] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("live templates: %w", err)
	}
	label := func(id int64) string {
		if labelled[id] {
			return strconv.FormatInt(id, 10)
		}
		return otherTemplate
	}

	rows, err = db.QueryContext(ctx, `SELECT s.template_id, s.status, COUNT(*) FROM subscriptions s
JOIN templates t ON t.id = s.template_id WHERE t.grab_end > ? GROUP BY s.template_id, s.status`, now.Add(-templateGrace))
	if err != nil {
		return st, fmt.Errorf("subscribers: %w", err)
	}
	for rows.Next() {
		var (
			id     int64
			status string
			n      float64
		)
		if err := rows.Scan(&id, &status, &n); err != nil {
			rows.Close()
			return st, fmt.Errorf("subscribers: %w", err)
		}
		st.subscribers[[2]string{label(id), status}] += n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("subscribers: %w", err)
	}

	rows, err = db.QueryContext(ctx, `SELECT template_id, COUNT(*) FROM subscriptions
WHERE status = 'pending' AND push_at <= ? GROUP BY template_id`, now.Add(pendingHorizon))
	if err != nil {
		return st, fmt.Errorf("pending reminders: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id int64
			n  float64
		)
		if err := rows.Scan(&id, &n); err != nil {
			return st, fmt.Errorf("pending reminders: %w", err)
		}
		st.pending[label(id)] += n
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("pending reminders: %w", err)
	}
	return st, nil
}

// setTemplateStats replaces the per-template gauges with st: templates no
// longer live leave the scrape.
func (m *workerMetrics) setTemplateStats(st templateStats) {
	m.templatePending.Reset()
	for l, n := range st.pending {
		m.templatePending.WithLabelValues(l).Set(n)
	}
	m.templateSubscribers.Reset()
	for k, n := range st.subscribers {
		m.templateSubscribers.WithLabelValues(k[0], k[1]).Set(n)
	}
}

// templateStatsPart reads the per-template subscription counts from MySQL
// every coupon-reconcile-every, in every worker with the coupon role (a
// read: no lock), so the gauges of any of them are current.
func (w *Worker) templateStatsPart() part {
	var (
		cancel context.CancelFunc
		done   = make(chan struct{})
	)
	return newPart("template stats", func(ctx context.Context) error {
		var rctx context.Context
		rctx, cancel = context.WithCancel(context.WithoutCancel(ctx))
		every := w.cfg.CouponReconcileEvery.Duration()
		go func() {
			defer close(done)
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				qctx, stop := context.WithTimeout(rctx, max(every, 10*time.Second))
				st, err := readTemplateStats(qctx, w.db, time.Now())
				stop()
				switch {
				case err == nil:
					w.m.setTemplateStats(st)
				case rctx.Err() == nil:
					w.log.Warn("template stats", "err", err)
				}
				select {
				case <-rctx.Done():
					return
				case <-t.C:
				}
			}
		}()
		return nil
	}, func() {
		if cancel != nil {
			cancel()
			<-done
		}
	})
}
