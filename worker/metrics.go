package worker

import (
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"couponpush/abuse"
	"couponpush/resize"
	"couponpush/scheduler"
)

// workerMetrics is every metric a worker exposes on /metrics, each declared
// here with its name and help (docs/operations.md "Metrics" lists them).
// Each worker has its own registry, so tests run several in one process.
// A role's metrics are registered when the role's part starts, so a worker
// shows only the metrics of what it runs. Values kept by other packages
// (scheduler and resize counters, N) are read when scraped.
type workerMetrics struct {
	reg *prometheus.Registry

	// every worker
	engineUp *prometheus.GaugeVec // by engine

	// scheduler role
	pushLateness prometheus.Histogram

	// api role
	httpRequests *prometheus.HistogramVec
	// api role: the abuse guard
	abuseLimited *prometheus.CounterVec // by action, kind
	abuseBlocked *prometheus.CounterVec // by action, kind
	abusePlaced  *prometheus.CounterVec // by who

	// cron role: the reindex safety net
	reindexChecked  prometheus.Counter
	reindexRepaired prometheus.Counter
	reindexRevived  prometheus.Counter // pending rows under a newer tombstone, repaired

	// coupon role
	templatesRefreshed prometheus.Counter
	couponsExpired     prometheus.Counter
	stockDrift         prometheus.Gauge
	substocksMissing   prometheus.Gauge
	stockRepaired      prometheus.Counter
	claimsSettled      prometheus.Counter
}

// latencyBuckets are push lateness's buckets: 1 ms to about 33 s.
var latencyBuckets = prometheus.ExponentialBuckets(0.001, 2, 16)

// newMetrics returns a worker's registry with the Go runtime, process and
// build-info collectors, and the gauges every worker exports.
func newMetrics() *workerMetrics {
	m := &workerMetrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	version, revision := buildVersion()
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "couponpush_build_info", Help: "Always 1; the labels say which build of couponpush runs.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision},
	}, func() float64 { return 1 }))
	m.engineUp = m.gaugeVec("couponpush_engine_up",
		"1 if the engine answered the last readiness check (every few seconds), 0 if not; only the engines this worker's roles need.", "engine")
	return m
}

// buildVersion is the main module's version and VCS revision, or
// "unknown".
func buildVersion() (version, revision string) {
	version, revision = "unknown", "unknown"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return version, revision
	}
	if bi.Main.Version != "" {
		version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			revision = s.Value
		}
	}
	return version, revision
}

// handler serves the registry in the Prometheus text (or protobuf) format.
// A collector that fails (Redis down at scrape time) leaves its series
// out; the rest are served.
func (m *workerMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

func (m *workerMetrics) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	m.reg.MustRegister(c)
	return c
}

func (m *workerMetrics) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	m.reg.MustRegister(g)
	return g
}

func (m *workerMetrics) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	m.reg.MustRegister(c)
	return c
}

func (m *workerMetrics) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	m.reg.MustRegister(g)
	return g
}

func (m *workerMetrics) counterFunc(name, help string, f func() int64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) }))
}

func (m *workerMetrics) gaugeFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

func bit(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// engineChecked records the outcome of an engine's readiness check.
func (m *workerMetrics) engineChecked(engine string, err error) {
	m.engineUp.WithLabelValues(engine).Set(bit(err == nil))
}

// watchQueueCount registers the queue count N the worker follows.
func (m *workerMetrics) watchQueueCount(count func() int) {
	m.gaugeFunc("couponpush_queue_count", "Queue count N this worker follows.", func() float64 { return float64(count()) })
}

// watchResize registers the resize coordinator's counters and the queue
// span.
func (m *workerMetrics) watchResize(st *resize.Stats, span func() int) {
	m.counterFunc("couponpush_resize_users_moved_total", "Users this worker moved to a new queue while N changed.", st.Moved.Load)
	m.counterFunc("couponpush_resize_moves_total", "Changes of N this worker coordinated to the end.", st.Moves.Load)
	m.gaugeFunc("couponpush_resize_coordinator", "1 while this worker holds the resize lock and coordinates changes of N.",
		func() float64 { return bit(st.Leading.Load()) })
	m.counterFunc("couponpush_resize_errors_total", "Failed resize steps (each is retried).", st.MoveErrs.Load)
	m.gaugeFunc("couponpush_queue_span", "Queues this worker visits: N, plus queues a smaller N left until they drain.",
		func() float64 { return float64(span()) })
}

// observeLateness records how late a push reached nsqd.
func (m *workerMetrics) observeLateness(d time.Duration) { m.pushLateness.Observe(max(d, 0).Seconds()) }

// watchScheduler registers the scheduler role's metrics: push lateness,
// which the scheduler observes through observeLateness, and its counters.
func (m *workerMetrics) watchScheduler(st *scheduler.Stats) {
	m.pushLateness = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "couponpush_push_lateness_seconds",
		Help: "Time from a push's due time to nsqd accepting it (by the Redis clock).", Buckets: latencyBuckets})
	m.reg.MustRegister(m.pushLateness)
	m.counterFunc("couponpush_pushes_published_total", "Pushes accepted by nsqd, redeliveries included.", st.Published.Load)
	m.counterFunc("couponpush_pushes_recovered_total", "Pushes republished from an expired or orphaned flight.", st.Recovered.Load)
	m.counterFunc("couponpush_leases_lost_total", "Queue leases lost while working.", st.LeasesLost.Load)
	m.counterFunc("couponpush_reminders_marked_total", "Reminders recorded as sent in MySQL.", st.Marked.Load)
	m.gaugeFunc("couponpush_mark_lag_seconds", "Age of the oldest acked push whose sent-mark has not reached MySQL.",
		func() float64 { return float64(st.MarkLagMs.Load()) / 1000 })
	m.counterFunc("couponpush_pushes_dead_lettered_total",
		"Pushes that can never be published (too large, refused by nsqd, template missing), moved to their queue's dead letters.", st.DeadLettered.Load)
	m.counterFunc("couponpush_publish_errors_total", "Publishes abandoned (lease lost or shutdown) and left for redelivery.", st.PublishErrs.Load)
}

// apiRole registers the HTTP API's request latency and the abuse guard's
// counters.
func (m *workerMetrics) apiRole() {
	m.httpRequests = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "couponpush_http_request_seconds",
		Help: "HTTP request latency by route and status.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"route", "status"})
	m.reg.MustRegister(m.httpRequests)
	m.abuseLimited = m.counterVec("couponpush_abuse_limited_total",
		"Requests refused 429 by a rate limit, by action (claim, subscribe) and the limit's key kind (user, ip).", "action", "kind")
	m.abuseBlocked = m.counterVec("couponpush_abuse_blocked_total",
		"Requests refused 403 blocked, by action and the block's kind (user, ip).", "action", "kind")
	m.abusePlaced = m.counterVec("couponpush_abuse_blocks_placed_total",
		"Blocks this worker placed, by who: operator (admin API) or auto (limits tripped too often).", "who")
}

// abuseHooks are the abuse guard's metric hooks.
func (m *workerMetrics) abuseHooks(c *abuse.Config) {
	c.OnLimited = func(a abuse.Action, k abuse.Kind) { m.abuseLimited.WithLabelValues(string(a), string(k)).Inc() }
	c.OnBlocked = func(a abuse.Action, k abuse.Kind) { m.abuseBlocked.WithLabelValues(string(a), string(k)).Inc() }
	c.OnPlaced = func(w abuse.Who) { m.abusePlaced.WithLabelValues(string(w)).Inc() }
}

// observeRequest records one HTTP request.
func (m *workerMetrics) observeRequest(route string, status int, d time.Duration) {
	m.httpRequests.WithLabelValues(route, strconv.Itoa(status)).Observe(d.Seconds())
}

// cronRole registers the cron role's metrics.
func (m *workerMetrics) cronRole() {
	m.reindexRepaired = m.counter("couponpush_reindex_repaired_total",
		"Pending reminders the Redis index lacked and the safety net re-indexed.")
	m.reindexChecked = m.counter("couponpush_reindex_checked_total", "Pending reminders the safety net checked.")
	m.reindexRevived = m.counter("couponpush_reindex_revived_total",
		"Pending reminders found under a newer tombstone (a DELETE whose MySQL write failed) and indexed again.")
}

// couponRole registers the coupon role's metrics.
func (m *workerMetrics) couponRole() {
	m.stockDrift = m.gauge("couponpush_coupon_stock_drift",
		"Coupons by which Redis stock and MySQL disagreed at the last reconcile (sum of |drift| over sub-stocks, before repair).")
	m.stockRepaired = m.counter("couponpush_coupon_stock_repaired_total", "Coupons of stock drift repaired by reconcile.")
	m.claimsSettled = m.counter("couponpush_coupon_claims_settled_total", "Claims left in flight past the deadline and settled from MySQL.")
	m.substocksMissing = m.gauge("couponpush_coupon_substocks_missing", "Sub-stocks missing in Redis at the last reconcile.")
	m.couponsExpired = m.counter("couponpush_coupons_expired_total", "Coupons the sweep wrote as expired.")
	m.templatesRefreshed = m.counter("couponpush_template_cache_refreshed_total", "Templates written to the Redis template cache.")
}
