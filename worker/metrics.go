package worker

import (
	"strconv"
	"time"

	"couponpush/abuse"
	"couponpush/metrics"
	"couponpush/resize"
	"couponpush/scheduler"
)

// workerMetrics is every metric a worker exposes on /metrics, each declared
// here with its name and help. A role's metrics are registered when the
// role's part starts, so a worker shows only the metrics of what it runs.
// Values kept by other packages (scheduler and resize counters, N) are
// read when scraped.
type workerMetrics struct {
	reg *metrics.Registry

	// scheduler role
	pushLateness *metrics.Histogram

	// api role
	httpRequests *metrics.HistogramVec
	// api role: the abuse guard
	abuseLimited *metrics.CounterVec // by action, kind
	abuseBlocked *metrics.CounterVec // by action, kind
	abusePlaced  *metrics.CounterVec // by who

	// cron role: the reindex safety net
	reindexChecked  *metrics.Counter
	reindexRepaired *metrics.Counter
	reindexRevived  *metrics.Counter // pending rows under a newer tombstone, repaired

	// coupon role
	templatesRefreshed *metrics.Counter
	couponsExpired     *metrics.Counter
	stockDrift         *metrics.Gauge
	substocksMissing   *metrics.Gauge
	stockRepaired      *metrics.Counter
	claimsSettled      *metrics.Counter
}

func newMetrics() *workerMetrics { return &workerMetrics{reg: metrics.NewRegistry()} }

// watchQueueCount registers the queue count N the worker follows.
func (m *workerMetrics) watchQueueCount(count func() int) {
	m.reg.GaugeFunc("couponpush_queue_count", "Queue count N this worker follows.", func() float64 { return float64(count()) })
}

// watchResize registers the resize coordinator's counters and the queue
// span.
func (m *workerMetrics) watchResize(st *resize.Stats, span func() int) {
	m.reg.CounterFunc("couponpush_resize_users_moved_total", "Users this worker moved to a new queue while N changed.", func() float64 { return float64(st.Moved.Load()) })
	m.reg.CounterFunc("couponpush_resize_moves_total", "Changes of N this worker coordinated to the end.", func() float64 { return float64(st.Moves.Load()) })
	m.reg.GaugeFunc("couponpush_resize_coordinator", "1 while this worker holds the resize lock and coordinates changes of N.", func() float64 {
		if st.Leading.Load() {
			return 1
		}
		return 0
	})
	m.reg.CounterFunc("couponpush_resize_errors_total", "Failed resize steps (each is retried).", func() float64 { return float64(st.MoveErrs.Load()) })
	m.reg.GaugeFunc("couponpush_queue_span", "Queues this worker visits: N, plus queues a smaller N left until they drain.", func() float64 { return float64(span()) })
}

// observeLateness records how late a push reached nsqd.
func (m *workerMetrics) observeLateness(d time.Duration) { m.pushLateness.ObserveDuration(max(d, 0)) }

// watchScheduler registers the scheduler role's metrics: push lateness,
// which the scheduler observes through observeLateness, and its counters.
func (m *workerMetrics) watchScheduler(st *scheduler.Stats) {
	m.pushLateness = m.reg.Histogram("couponpush_push_lateness_seconds",
		"Time from a push's due time to nsqd accepting it (by the Redis clock).",
		metrics.ExponentialBuckets(0.001, 2, 16))
	m.reg.CounterFunc("couponpush_pushes_published_total", "Pushes accepted by nsqd, redeliveries included.", func() float64 { return float64(st.Published.Load()) })
	m.reg.CounterFunc("couponpush_pushes_recovered_total", "Pushes republished from an expired or orphaned flight.", func() float64 { return float64(st.Recovered.Load()) })
	m.reg.CounterFunc("couponpush_leases_lost_total", "Queue leases lost while working.", func() float64 { return float64(st.LeasesLost.Load()) })
	m.reg.CounterFunc("couponpush_reminders_marked_total", "Reminders recorded as sent in MySQL.", func() float64 { return float64(st.Marked.Load()) })
	m.reg.GaugeFunc("couponpush_mark_lag_seconds", "Age of the oldest acked push whose sent-mark has not reached MySQL.", func() float64 { return float64(st.MarkLagMs.Load()) / 1000 })
	m.reg.CounterFunc("couponpush_pushes_dead_lettered_total", "Pushes that can never be published (too large, refused by nsqd, template missing), moved to their queue's dead letters.", func() float64 { return float64(st.DeadLettered.Load()) })
	m.reg.CounterFunc("couponpush_publish_errors_total", "Publishes abandoned (lease lost or shutdown) and left for redelivery.", func() float64 { return float64(st.PublishErrs.Load()) })
}

// apiRole registers the HTTP API's request latency and the abuse guard's
// counters.
func (m *workerMetrics) apiRole() {
	m.httpRequests = m.reg.HistogramVec("couponpush_http_request_seconds", "HTTP request latency by route and status.",
		metrics.ExponentialBuckets(0.0005, 2, 14), "route", "status")
	m.abuseLimited = m.reg.CounterVec("couponpush_abuse_limited_total",
		"Requests refused 429 by a rate limit, by action (claim, subscribe) and the limit's key kind (user, ip).", "action", "kind")
	m.abuseBlocked = m.reg.CounterVec("couponpush_abuse_blocked_total",
		"Requests refused 403 blocked, by action and the block's kind (user, ip).", "action", "kind")
	m.abusePlaced = m.reg.CounterVec("couponpush_abuse_blocks_placed_total",
		"Blocks this worker placed, by who: operator (admin API) or auto (limits tripped too often).", "who")
}

// abuseHooks are the abuse guard's metric hooks.
func (m *workerMetrics) abuseHooks(c *abuse.Config) {
	c.OnLimited = func(a abuse.Action, k abuse.Kind) { m.abuseLimited.With(string(a), string(k)).Inc() }
	c.OnBlocked = func(a abuse.Action, k abuse.Kind) { m.abuseBlocked.With(string(a), string(k)).Inc() }
	c.OnPlaced = func(w abuse.Who) { m.abusePlaced.With(string(w)).Inc() }
}

// observeRequest records one HTTP request.
func (m *workerMetrics) observeRequest(route string, status int, d time.Duration) {
	m.httpRequests.With(route, strconv.Itoa(status)).ObserveDuration(d)
}

// cronRole registers the cron role's metrics.
func (m *workerMetrics) cronRole() {
	m.reindexRepaired = m.reg.Counter("couponpush_reindex_repaired_total",
		"Pending reminders the Redis index lacked and the safety net re-indexed.")
	m.reindexChecked = m.reg.Counter("couponpush_reindex_checked_total", "Pending reminders the safety net checked.")
	m.reindexRevived = m.reg.Counter("couponpush_reindex_revived_total",
		"Pending reminders found under a newer tombstone (a DELETE whose MySQL write failed) and indexed again.")
}

// couponRole registers the coupon role's metrics.
func (m *workerMetrics) couponRole() {
	m.stockDrift = m.reg.Gauge("couponpush_coupon_stock_drift",
		"Coupons by which Redis stock and MySQL disagreed at the last reconcile (sum of |drift| over sub-stocks, before repair).")
	m.stockRepaired = m.reg.Counter("couponpush_coupon_stock_repaired_total", "Coupons of stock drift repaired by reconcile.")
	m.claimsSettled = m.reg.Counter("couponpush_coupon_claims_settled_total", "Claims left in flight past the deadline and settled from MySQL.")
	m.substocksMissing = m.reg.Gauge("couponpush_coupon_substocks_missing", "Sub-stocks missing in Redis at the last reconcile.")
	m.couponsExpired = m.reg.Counter("couponpush_coupons_expired_total", "Coupons the sweep wrote as expired.")
	m.templatesRefreshed = m.reg.Counter("couponpush_template_cache_refreshed_total", "Templates written to the Redis template cache.")
}
