package console

import (
	"cmp"
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"couponpush/queue"
)

// Forecast states of a drop.
const (
	ForecastOnTime   = "on time"     // the backlog drains before the grab start
	ForecastWillMiss = "will miss"   // at the measured rate it does not
	ForecastNotDue   = "not due yet" // nothing pending is due yet: no rate to measure
	ForecastNoRate   = "no rate"     // pending and due, but nothing published in the window
	ForecastDone     = "drained"     // nothing pending
)

// chartPoints caps the points of one drop's chart.
const chartPoints = 300

// overviewJSON is GET api/overview: everything the page shows but the
// user trace and the audit log.
type overviewJSON struct {
	At          string            `json:"at"`
	SampledAt   string            `json:"sampled_at,omitempty"`
	Errors      map[string]string `json:"errors"`
	Paused      bool              `json:"paused"`
	RedisPrefix string            `json:"redis_prefix"`
	Queues      queuesJSON        `json:"queues"`
	Workers     []workerJSON      `json:"workers"`
	Drops       []dropJSON        `json:"drops"`
	Coupons     couponsJSON       `json:"coupons"`
	PublishRate float64           `json:"publish_rate"` // reminder items/s over the rate window
	Operator    string            `json:"operator"`
}

type queuesJSON struct {
	Key        string      `json:"key"`
	Count      int         `json:"count"` // N in Consul; while absent, the N the workers follow (0: unknown)
	Found      bool        `json:"found"`
	Error      string      `json:"error,omitempty"`
	Recorded   bool        `json:"recorded"`
	Generation int64       `json:"generation"`
	From       int         `json:"from"`
	To         int         `json:"to"`
	Span       int         `json:"span"`
	Moving     bool        `json:"moving"`
	Moved      int64       `json:"moved"`
	Total      int64       `json:"total"`
	Queues     []queueJSON `json:"list"`
	DueUsers   int64       `json:"due_users"`
	InFlight   int64       `json:"in_flight"`
	Ready      int64       `json:"ready"`
	MaxLagMs   int64       `json:"max_lag_ms"`
	Dead       int64       `json:"dead_letters"`
}

type queueJSON struct {
	Queue       int    `json:"queue"`
	Users       int64  `json:"users"`
	Depth       int64  `json:"depth"`
	LagMs       int64  `json:"lag_ms"`
	InFlight    int64  `json:"in_flight"`
	Ready       int64  `json:"ready"`
	Marks       int64  `json:"marks"`
	InTransit   int64  `json:"in_transit"`
	LeaseHolder string `json:"lease_holder"`
	LeaseTTLMs  int64  `json:"lease_ttl_ms"`
	Dead        int64  `json:"dead_letters"`
}

type workerJSON struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Status  string `json:"status"`
	Roles   string `json:"roles"`
	OpsAddr string `json:"ops_addr"`
	Version string `json:"version,omitempty"`
	Scrape  string `json:"scrape"` // ok, or why not
	Leases  int    `json:"leases"` // queues whose lease it holds
}

type dropJSON struct {
	ID        int64        `json:"id"`
	Name      string       `json:"name"`
	GrabStart string       `json:"grab_start"`
	GrabEnd   string       `json:"grab_end"`
	Pending   int64        `json:"pending"`
	Sent      int64        `json:"sent"`
	Cancelled int64        `json:"cancelled"`
	Due       float64      `json:"due"`       // reminder items taken as due, cluster-wide
	Published float64      `json:"published"` // reminder items accepted by nsqd
	P50Ms     float64      `json:"p50_ms"`    // lateness; -1 when nothing observed
	P99Ms     float64      `json:"p99_ms"`
	Forecast  string       `json:"forecast"`
	ETA       string       `json:"eta,omitempty"`
	MarginMs  int64        `json:"margin_ms"` // grab start - ETA (negative: late)
	Chart     [][3]float64 `json:"chart"`     // [unix ms, due, published]
}

type couponsJSON struct {
	Templates []couponJSON       `json:"templates"`
	Claims    map[string]float64 `json:"claims"` // by outcome code, cluster-wide
	Drift     float64            `json:"drift"`  // couponpush_coupon_stock_drift, max over workers
}

type couponJSON struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	Stock     int64  `json:"stock"`
	Issued    int64  `json:"issued"`    // coupons rows in MySQL
	Remaining int64  `json:"remaining"` // Redis sub-stocks; -1 when unread
	Drift     int64  `json:"drift"`     // stock - issued - remaining: claims in flight, or drift reconcile repairs
}

// stamp formats t as the contract's times.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// rate is the reminder items published per second over window, from the
// ring's points; 0 without two points in it.
func rate(pts []point, window time.Duration) float64 {
	if len(pts) < 2 {
		return 0
	}
	last := pts[len(pts)-1]
	i := len(pts) - 2
	for i > 0 && last.at.Sub(pts[i-1].at) <= window {
		i--
	}
	first := pts[i]
	dt := last.at.Sub(first.at).Seconds()
	if dt <= 0 || last.total < first.total { // a restarted worker resets its counters
		return 0
	}
	return (last.total - first.total) / dt
}

// forecast says whether pending reminders, the first due at first, drain
// before grabStart at r items per second, seen at now.
func forecast(now time.Time, pending int64, first time.Time, r float64, grabStart time.Time) (state string, eta time.Time) {
	switch {
	case pending == 0:
		return ForecastDone, time.Time{}
	case r <= 0 && first.After(now):
		return ForecastNotDue, time.Time{}
	case r <= 0:
		if now.After(grabStart) {
			return ForecastWillMiss, time.Time{}
		}
		return ForecastNoRate, time.Time{}
	}
	start := now
	if first.After(now) {
		start = first
	}
	eta = start.Add(time.Duration(float64(pending) / r * float64(time.Second)))
	if eta.After(grabStart) {
		return ForecastWillMiss, eta
	}
	return ForecastOnTime, eta
}

func ms(seconds float64) float64 {
	if math.IsNaN(seconds) {
		return -1
	}
	return math.Round(seconds*1e4) / 10
}

// overview builds the page's figures from the last snapshot.
func (c *Console) buildOverview(ctx context.Context, operator string) overviewJSON {
	snap, pts := c.sampler.fresh(ctx, 2*c.cfg.SampleEvery)
	now := c.cfg.Now()
	out := overviewJSON{At: stamp(now), SampledAt: stamp(snap.at), Errors: snap.errs, Paused: snap.paused,
		RedisPrefix: c.cfg.RedisPrefix, Workers: []workerJSON{}, Drops: []dropJSON{}, Operator: operator}
	if out.Errors == nil {
		out.Errors = map[string]string{}
	}
	m := snap.metrics
	if m == nil {
		m = newMetrics()
	}

	// Queues.
	q := queuesJSON{Key: snap.nKey, Count: snap.n, Found: snap.nFound, Error: snap.nErr, Recorded: snap.recorded,
		Generation: snap.layout.Gen, From: snap.layout.From, To: snap.layout.To, Span: snap.layout.Span,
		Moving: snap.recorded && !snap.layout.Stable(), Moved: snap.layout.Moved, Total: snap.layout.Total, Queues: []queueJSON{}}
	if !snap.recorded {
		q.Span = len(snap.queues)
	}
	dead := m.maxBy(mDeadLetters, "queue")
	for _, info := range snap.queues {
		j := queueJSON{Queue: info.Queue, Users: info.Users, Depth: info.DueUsers, InFlight: info.InFlight, Ready: info.Ready, Marks: info.Marks,
			InTransit: info.InTransit, LeaseHolder: holder(info), LeaseTTLMs: info.LeaseTTL.Milliseconds(),
			Dead: int64(dead[strconv.Itoa(info.Queue)])}
		if !info.EarliestDue.IsZero() && !snap.redisTime.IsZero() {
			j.LagMs = max(0, snap.redisTime.Sub(info.EarliestDue).Milliseconds())
		}
		q.DueUsers += j.Depth
		q.InFlight += j.InFlight
		q.Ready += j.Ready
		q.MaxLagMs = max(q.MaxLagMs, j.LagMs)
		q.Dead += j.Dead
		q.Queues = append(q.Queues, j)
	}
	out.Queues = q

	// Workers.
	for _, w := range snap.workers {
		j := workerJSON{ID: w.ID, Address: w.Address, Status: w.Status, Roles: strings.Trim(w.Meta["roles"], "[]"),
			OpsAddr: w.Meta[opsAddrMeta], Version: w.Version, Scrape: "ok"}
		if w.Port != 0 {
			j.Address += ":" + strconv.Itoa(w.Port)
		}
		if w.ScrapeErr != "" {
			j.Scrape = w.ScrapeErr
		}
		for _, info := range snap.queues {
			if info.LeaseHeld && info.LeaseHolder == w.ID {
				j.Leases++
			}
		}
		out.Workers = append(out.Workers, j)
	}

	// Drops.
	out.PublishRate = math.Round(rate(pts, c.cfg.RateWindow)*10) / 10
	lateness := m.histBy(mTemplateLateness, "template")
	var last point
	if len(pts) > 0 {
		last = pts[len(pts)-1]
	}
	step := max(1, len(pts)/chartPoints)
	for _, t := range snap.templates {
		id := strconv.FormatInt(t.ID, 10)
		s := snap.subs[t.ID]
		d := dropJSON{ID: t.ID, Name: t.Name, GrabStart: stamp(t.GrabStart), GrabEnd: stamp(t.GrabEnd),
			Pending: s.Pending, Sent: s.Sent, Cancelled: s.Cancelled, Due: last.due[id], Published: last.published[id],
			P50Ms: ms(lateness[id].quantile(0.5)), P99Ms: ms(lateness[id].quantile(0.99)), Chart: [][3]float64{}}
		var eta time.Time
		d.Forecast, eta = forecast(now, s.Pending, s.FirstPending, out.PublishRate, t.GrabStart)
		if !eta.IsZero() {
			d.ETA, d.MarginMs = stamp(eta), t.GrabStart.Sub(eta).Milliseconds()
		}
		for i := 0; i < len(pts); i += step {
			p := pts[i]
			d.Chart = append(d.Chart, [3]float64{float64(p.at.UnixMilli()), p.due[id], p.published[id]})
		}
		out.Drops = append(out.Drops, d)
	}

	// Coupons.
	cj := couponsJSON{Templates: []couponJSON{}, Claims: m.by(mClaims, "code"), Drift: 0}
	for _, v := range m.max[mDrift] {
		cj.Drift = max(cj.Drift, v)
	}
	for _, t := range snap.templates {
		left, ok := snap.remaining[t.ID]
		j := couponJSON{ID: t.ID, Name: t.Name, Stock: t.Stock, Issued: snap.issued[t.ID], Remaining: -1}
		if ok {
			j.Remaining, j.Drift = left, t.Stock-j.Issued-left
		}
		cj.Templates = append(cj.Templates, j)
	}
	slices.SortFunc(cj.Templates, func(a, b couponJSON) int { return cmp.Compare(a.ID, b.ID) })
	out.Coupons = cj
	return out
}

// holder names a queue's lease holder: its worker id, "(anonymous)" for a
// lease without owner, "" when free.
func holder(q queue.QueueInfo) string {
	switch {
	case !q.LeaseHeld:
		return ""
	case q.LeaseHolder == "":
		return "(anonymous)"
	}
	return q.LeaseHolder
}
