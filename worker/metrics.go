package worker

import (
	"context"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"couponpush/abuse"
	"couponpush/httpapi"
	"couponpush/push"
	"couponpush/queue"
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

	seriesMu sync.RWMutex
	series   map[string]templateSeries // by template label; see seriesOf

	// every worker
	engineUp *prometheus.GaugeVec // by engine

	// scheduler role
	pushLateness prometheus.Histogram
	// scheduler role: by template (labels.go bounds the label)
	templates         *templateLabels
	templateDue       *prometheus.CounterVec
	templatePublished *prometheus.CounterVec
	templateLateness  *prometheus.HistogramVec
	templateGrabStart *prometheus.GaugeVec

	// api role
	httpRequests *prometheus.HistogramVec
	httpInFlight *prometheus.GaugeVec
	claims       *prometheus.CounterVec // by code (httpapi.ClaimOutcomes)
	// api role: the abuse guard
	abuseLimited *prometheus.CounterVec // by action, kind
	abuseBlocked *prometheus.CounterVec // by action, kind
	abuseLeased  *prometheus.CounterVec // by action, kind
	abusePlaced  *prometheus.CounterVec // by who

	// cron role: the reindex safety net
	reindexChecked   prometheus.Counter
	reindexRepaired  prometheus.Counter
	reindexRevived   prometheus.Counter // pending rows under a newer tombstone, repaired
	reindexReclassed prometheus.Counter // pending reminders moved to their template's new priority

	// coupon role
	templatesRefreshed prometheus.Counter
	couponsExpired     prometheus.Counter
	stockDrift         prometheus.Gauge
	substocksMissing   prometheus.Gauge
	stockRepaired      prometheus.Counter
	claimsSettled      prometheus.Counter
	// coupon role: read from MySQL every coupon-reconcile-every
	// (templatestats.go), by template (and status)
	templatePending     *prometheus.GaugeVec
	templateSubscribers *prometheus.GaugeVec
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
	m.gaugeFunc("couponpush_resize_moving", "1 while this worker drives a move of users to a new queue count N.",
		func() float64 { return bit(st.Moving.Load()) })
	m.gaugeFunc("couponpush_resize_queues_left", "Old queues the move in progress has not yet moved out (0 when none runs here).",
		func() float64 { return float64(st.QueuesLeft.Load()) })
	m.gaugeFunc("couponpush_queue_span", "Queues this worker visits: N, plus queues a smaller N left until they drain.",
		func() float64 { return float64(span()) })
}

// observePush records a push nsqd accepted, late after its due time: its
// lateness, and by template its items and theirs.
func (m *workerMetrics) observePush(p push.Push, late time.Duration) {
	m.pushLateness.Observe(max(late, 0).Seconds())
	at := p.DueAt.Add(late)
	if len(p.Items) == 1 { // the common case, once per push of a burst
		c := m.seriesOf(m.templates.labelAt(p.Items[0].TemplateID, at))
		c.published.Inc()
		c.lateness.Observe(max(at.Sub(p.Items[0].PushAt), 0).Seconds())
		return
	}
	for _, n := range byTemplateOf(m.templates, p.Items, func(it push.Item) int64 { return it.TemplateID }) {
		m.seriesOf(n.label).published.Add(float64(n.items))
	}
	for _, it := range p.Items {
		m.seriesOf(m.templates.labelAt(it.TemplateID, at)).lateness.Observe(max(at.Sub(it.PushAt), 0).Seconds())
	}
}

// templateSeries are one template label's published and lateness series,
// looked up once rather than (label hashing and all) once per push.
type templateSeries struct {
	published prometheus.Counter
	lateness  prometheus.Observer
}

// seriesOf returns label's series, from the cache the label's drop clears.
func (m *workerMetrics) seriesOf(label string) templateSeries {
	m.seriesMu.RLock()
	c, ok := m.series[label]
	m.seriesMu.RUnlock()
	if ok {
		return c
	}
	m.seriesMu.Lock()
	defer m.seriesMu.Unlock()
	if c, ok := m.series[label]; ok {
		return c
	}
	c = templateSeries{m.templatePublished.WithLabelValues(label), m.templateLateness.WithLabelValues(label)}
	m.series[label] = c
	return c
}

// observeTaken records the reminder items of a chunk taken as due.
func (m *workerMetrics) observeTaken(ch queue.Chunk) {
	var items []queue.Item
	for _, p := range ch.Pushes {
		items = append(items, p.Items...)
	}
	for _, n := range byTemplateOf(m.templates, items, func(it queue.Item) int64 { return it.TemplateID }) {
		m.templateDue.WithLabelValues(n.label).Add(float64(n.items))
	}
}

// labelCount is how many items went to one template label.
type labelCount struct {
	label string
	items int
}

// byTemplateOf counts items by template label, so a chunk of one template
// (the usual case) takes one label lookup.
func byTemplateOf[T any](l *templateLabels, items []T, id func(T) int64) []labelCount {
	var out []labelCount
	last, lastLabel := int64(0), ""
	for _, it := range items {
		tid := id(it)
		if tid != last || lastLabel == "" {
			last, lastLabel = tid, l.label(tid)
		}
		if n := len(out); n > 0 && out[n-1].label == lastLabel {
			out[n-1].items++
			continue
		}
		out = append(out, labelCount{lastLabel, 1})
	}
	return out
}

// watchScheduler registers the scheduler role's metrics: push lateness
// and the per-template series, which the scheduler feeds through
// observePush and observeTaken, its counters, and the queues it works,
// read from Redis at scrape time. lookup finds a template's grab start and
// end, for its label.
func (m *workerMetrics) watchScheduler(s *scheduler.Scheduler, idx *queue.Client, span func() int, owner string,
	lookup func(context.Context, int64) (templateInfo, error)) {
	st := s.Stats()
	m.pushLateness = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "couponpush_push_lateness_seconds",
		Help: "Time from a push's due time to nsqd accepting it (by the Redis clock).", Buckets: latencyBuckets})
	m.reg.MustRegister(m.pushLateness)
	m.counterFunc("couponpush_lease_acquired_total", "Queue leases this worker took.", st.LeasesAcquired.Load)
	m.gaugeFunc("couponpush_scheduler_paused", "1 while operators have paused emitting (the cluster pause flag is set).",
		func() float64 { return bit(s.Paused()) })
	m.gaugeFunc("couponpush_scheduler_last_tick_timestamp_seconds",
		"Unix time of the scheduler's last loop iteration, busy or idle: a stuck scheduler stops moving it.",
		func() float64 { return float64(st.LastTickNs.Load()) / 1e9 })
	m.counterFunc("couponpush_pushes_published_total", "Pushes accepted by nsqd, redeliveries included.", st.Published.Load)
	m.counterFunc("couponpush_pushes_recovered_total", "Pushes republished from an expired or orphaned flight.", st.Recovered.Load)
	m.counterFunc("couponpush_leases_lost_total", "Queue leases lost while working.", st.LeasesLost.Load)
	m.counterFunc("couponpush_reminders_marked_total", "Reminders recorded as sent in MySQL.", st.Marked.Load)
	m.gaugeFunc("couponpush_mark_lag_seconds", "Age of the oldest acked push whose sent-mark has not reached MySQL.",
		func() float64 { return float64(st.MarkLagMs.Load()) / 1000 })
	m.counterFunc("couponpush_pushes_dead_lettered_total",
		"Pushes that can never be published (too large, refused by nsqd, template missing), moved to their queue's dead letters.", st.DeadLettered.Load)
	m.counterFunc("couponpush_publish_errors_total", "Publishes abandoned (lease lost or shutdown) and left for redelivery.", st.PublishErrs.Load)
	m.counterFunc("couponpush_pushes_prepared_total",
		"Pushes taken ahead of due into ready chunks (work_ahead), to be published at their time.", st.Prepared.Load)
	m.counterFunc("couponpush_pushes_sealed_total",
		"Prepared pushes whose encoded messages were stored beside their chunk, so that at due only the publish is left.", st.Sealed.Load)
	m.counterFunc("couponpush_publishes_fenced_total",
		"Publishes withheld because the queue's lease had run out by this worker's clock (it was stopped or stalled past it); the next holder republishes them.", st.Fenced.Load)

	m.templateDue = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "couponpush_template_due_total",
		Help: "Reminder items this worker took from its queues as due, by template (live templates only, at most 64; the rest \"other\")."}, []string{"template"})
	m.templatePublished = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "couponpush_template_published_total",
		Help: "Reminder items nsqd accepted from this worker, redeliveries included, by template."}, []string{"template"})
	m.templateLateness = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "couponpush_template_push_lateness_seconds",
		Help: "Time from a reminder item's push time to nsqd accepting its push (by the Redis clock), by template.", Buckets: latencyBuckets}, []string{"template"})
	m.templateGrabStart = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "couponpush_template_grab_start_timestamp_seconds",
		Help: "Unix time of a labelled template's grab start."}, []string{"template"})
	vecs := []interface{ DeleteLabelValues(...string) bool }{m.templateDue, m.templatePublished, m.templateLateness, m.templateGrabStart}
	m.templates = newTemplateLabels(lookup, func(label string, t templateInfo) {
		m.templateGrabStart.WithLabelValues(label).Set(float64(t.grabStart.UnixMilli()) / 1000)
	}, func(label string) {
		m.seriesMu.Lock()
		defer m.seriesMu.Unlock()
		delete(m.series, label)
		for _, v := range vecs {
			v.DeleteLabelValues(label)
		}
	})
	m.series = map[string]templateSeries{}
	m.reg.MustRegister(&pruning{prune: m.templates.prune,
		cs: []prometheus.Collector{m.templateDue, m.templatePublished, m.templateLateness, m.templateGrabStart}})
	m.reg.MustRegister(newQueueCollector(idx, span, owner))
}

// pruning collects cs after prune ran, so templates no longer live leave
// the scrape even when nothing observes them.
type pruning struct {
	prune func()
	cs    []prometheus.Collector
}

func (p *pruning) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range p.cs {
		c.Describe(ch)
	}
}

func (p *pruning) Collect(ch chan<- prometheus.Metric) {
	p.prune()
	for _, c := range p.cs {
		c.Collect(ch)
	}
}

// queueScrapeTimeout bounds the Redis reads of one scrape's queue series.
const queueScrapeTimeout = 3 * time.Second

// queueCollector reads every queue of the span from Redis when scraped,
// in pipelined round trips (queue.Client.Inspect); the queue label takes
// at most span values.
type queueCollector struct {
	idx   *queue.Client
	span  func() int
	owner string // this worker's lease owner name

	depth, users, earliest, lag, inflight, ready, held, dead *prometheus.Desc
	backlog                                                  *prometheus.Desc // labels queue, priority
}

func newQueueCollector(idx *queue.Client, span func() int, owner string) *queueCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"queue"}, nil)
	}
	return &queueCollector{idx: idx, span: span, owner: owner,
		depth:    d("couponpush_queue_depth", "Users of the queue with a due score (pending items or tombstones to drop)."),
		users:    d("couponpush_queue_users", "Users with a record in the queue."),
		earliest: d("couponpush_queue_earliest_due_timestamp_seconds", "Unix time of the queue's earliest due score; absent when none is due."),
		lag:      d("couponpush_queue_lag_seconds", "Redis now minus the queue's earliest due score, 0 when nothing is overdue."),
		inflight: d("couponpush_queue_inflight_chunks", "Chunks popped from the queue and not yet acked."),
		ready:    d("couponpush_queue_ready_chunks", "Chunks prepared ahead of due in the queue whose publish has not begun."),
		held:     d("couponpush_queue_lease_held", "1 if this worker holds the queue's lease."),
		dead:     d("couponpush_dead_letters", "Pushes in the queue's dead-letter set (never publishable, kept for replay)."),
		backlog: prometheus.NewDesc("couponpush_queue_backlog",
			"Users of the queue due by the Redis clock and not yet taken, by the priority of their next push.", []string{"queue", "priority"}, nil),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.depth, c.users, c.earliest, c.lag, c.inflight, c.ready, c.held, c.dead, c.backlog} {
		ch <- d
	}
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), queueScrapeTimeout)
	defer cancel()
	now, err := c.idx.Time(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.depth, err)
		return
	}
	infos, err := c.idx.Inspect(ctx, c.span())
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.depth, err)
		return
	}
	for _, qi := range infos {
		q := strconv.Itoa(qi.Queue)
		g := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, q)
		}
		g(c.depth, float64(qi.DueUsers))
		g(c.users, float64(qi.Users))
		lag := 0.0
		if !qi.EarliestDue.IsZero() {
			g(c.earliest, float64(qi.EarliestDue.UnixMilli())/1000)
			lag = max(now.Sub(qi.EarliestDue).Seconds(), 0)
		}
		g(c.lag, lag)
		g(c.inflight, float64(qi.InFlight))
		g(c.ready, float64(qi.Ready))
		g(c.held, bit(qi.LeaseHeld && qi.LeaseHolder == c.owner))
		g(c.dead, float64(qi.DeadLetters))
		for i, p := range queue.Priorities {
			ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(qi.Backlog[i]), q, p.String())
		}
	}
}

// apiRole registers the HTTP API's request latency and the abuse guard's
// counters.
func (m *workerMetrics) apiRole() {
	m.httpRequests = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "couponpush_http_request_seconds",
		Help: "HTTP request latency by route and status.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"route", "status"})
	m.httpInFlight = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "couponpush_http_requests_in_flight",
		Help: "HTTP requests being served, by route (probes included; the in-flight cap, max_in_flight, leaves probes out)."}, []string{"route"})
	m.reg.MustRegister(m.httpRequests, m.httpInFlight)
	m.claims = m.counterVec("couponpush_claims_total",
		"Claims the API answered, by code: issued, replayed (the same request_id again), the claim's error code, bad_request or other.", "code")
	for _, c := range httpapi.ClaimOutcomes {
		m.claims.WithLabelValues(c) // every code shows, at 0 until it happens
	}
	m.abuseLimited = m.counterVec("couponpush_abuse_limited_total",
		"Requests refused 429 by a rate limit, by action (claim, subscribe) and the limit's key kind (user, ip).", "action", "kind")
	m.abuseBlocked = m.counterVec("couponpush_abuse_blocked_total",
		"Requests refused 403 blocked, by action and the block's kind (user, ip).", "action", "kind")
	m.abuseLeased = m.counterVec("couponpush_abuse_leased_total",
		"Requests that a limit, by action and kind, let through from tokens this worker had leased, without a Redis call (limit_lease); the request may still be refused by a block or its other limit.", "action", "kind")
	m.abusePlaced = m.counterVec("couponpush_abuse_blocks_placed_total",
		"Blocks this worker placed, by who: operator (admin API) or auto (limits tripped too often).", "who")
}

// abuseHooks are the abuse guard's metric hooks.
func (m *workerMetrics) abuseHooks(c *abuse.Config) {
	c.OnLimited = func(a abuse.Action, k abuse.Kind) { m.abuseLimited.WithLabelValues(string(a), string(k)).Inc() }
	c.OnBlocked = func(a abuse.Action, k abuse.Kind) { m.abuseBlocked.WithLabelValues(string(a), string(k)).Inc() }
	c.OnLeased = func(a abuse.Action, k abuse.Kind) { m.abuseLeased.WithLabelValues(string(a), string(k)).Inc() }
	c.OnPlaced = func(w abuse.Who) { m.abusePlaced.WithLabelValues(string(w)).Inc() }
}

// observeClaim records one claim's outcome.
func (m *workerMetrics) observeClaim(code string) { m.claims.WithLabelValues(code).Inc() }

// startRequest counts an HTTP request in flight until observeRequest.
func (m *workerMetrics) startRequest(route string) { m.httpInFlight.WithLabelValues(route).Inc() }

// observeRequest records one HTTP request, done.
func (m *workerMetrics) observeRequest(route string, status int, d time.Duration) {
	m.httpInFlight.WithLabelValues(route).Dec()
	m.httpRequests.WithLabelValues(route, strconv.Itoa(status)).Observe(d.Seconds())
}

// cronRole registers the cron role's metrics.
func (m *workerMetrics) cronRole() {
	m.reindexRepaired = m.counter("couponpush_reindex_repaired_total",
		"Pending reminders the Redis index lacked and the safety net re-indexed.")
	m.reindexChecked = m.counter("couponpush_reindex_checked_total", "Pending reminders the safety net checked.")
	m.reindexRevived = m.counter("couponpush_reindex_revived_total",
		"Pending reminders found under a newer tombstone (a DELETE whose MySQL write failed) and indexed again.")
	m.reindexReclassed = m.counter("couponpush_reindex_reclassed_total",
		"Pending reminders the safety net moved to their template's priority after a PATCH changed it.")
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
	m.templatePending = m.gaugeVec("couponpush_template_pending_reminders",
		"Pending reminders whose push time has passed or falls within the next hour, by template (live templates, at most 64; the rest \"other\"); read from MySQL.", "template")
	m.templateSubscribers = m.gaugeVec("couponpush_template_subscribers",
		"Subscriptions by template (live templates, at most 64; the rest \"other\") and status (pending, sent, cancelled); read from MySQL.", "template", "status")
}
