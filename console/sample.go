package console

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"

	"couponpush/cluster"
	"couponpush/queue"
)

// Metric names the console reads (docs/METRICS-SPEC.md of the project).
const (
	mTemplateDue       = "couponpush_template_due_total"
	mTemplatePublished = "couponpush_template_published_total"
	mTemplateLateness  = "couponpush_template_push_lateness_seconds"
	mPublished         = "couponpush_pushes_published_total"
	mLateness          = "couponpush_push_lateness_seconds"
	mClaims            = "couponpush_claims_total"
	mDrift             = "couponpush_coupon_stock_drift"
	mDeadLetters       = "couponpush_dead_letters"
	mLeaseHeld         = "couponpush_queue_lease_held"
	mBuildInfo         = "couponpush_build_info"
)

// opsAddrMeta is the Consul service Meta key of a worker's ops listener.
const opsAddrMeta = "ops_addr"

// point is one sample of the cumulative counters.
type point struct {
	at        time.Time
	due       map[string]float64 // by template id
	published map[string]float64 // by template id
	total     float64            // reminder items published, every template
}

// ring is a bounded buffer of points, oldest first.
type ring struct {
	buf  []point
	next int
	full bool
}

func newRing(n int) *ring { return &ring{buf: make([]point, max(n, 2))} }

func (r *ring) push(p point) {
	r.buf[r.next] = p
	r.next = (r.next + 1) % len(r.buf)
	r.full = r.full || r.next == 0
}

// points returns the points, oldest first.
func (r *ring) points() []point {
	if !r.full {
		return append([]point(nil), r.buf[:r.next]...)
	}
	return append(append([]point(nil), r.buf[r.next:]...), r.buf[:r.next]...)
}

// workerState is one worker from Consul and how its scrape went.
type workerState struct {
	cluster.Worker
	ScrapeErr string
	Version   string
}

// snapshot is everything the sampler last read; views are built from it.
type snapshot struct {
	at      time.Time
	workers []workerState
	metrics *metrics
	errs    map[string]string // by source: consul, redis, mysql, coupons

	// Consul
	n       int
	nFound  bool
	nErr    string
	nIndex  uint64
	nKey    string
	service string
	// Redis
	layout    queue.LayoutStatus
	recorded  bool
	paused    bool
	redisTime time.Time
	queues    []queue.QueueInfo
	// MySQL, read every MySQLEvery
	mysqlAt   time.Time
	templates []Template
	subs      map[int64]Subscribers
	issued    map[int64]int64
	remaining map[int64]int64
}

// sampler reads the cluster into snapshots and keeps the ring of points.
type sampler struct {
	cfg  Config
	deps Deps

	sampling sync.Mutex // one sample at a time: the loop's or a request's (fresh)

	mu   sync.Mutex // guards last and ring
	last snapshot
	ring *ring
}

func newSampler(cfg Config, deps Deps) *sampler {
	return &sampler{cfg: cfg, deps: deps, ring: newRing(cfg.samples()),
		last: snapshot{metrics: newMetrics(), errs: map[string]string{}}}
}

// current returns the last snapshot and the ring's points.
func (s *sampler) current() (snapshot, []point) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.ring.points()
}

// fresh returns a snapshot taken within maxAge, sampling first if the
// last is older: the first look after the console sat idle (or after the
// worker started) shows the cluster as it is, not an empty or stale page.
func (s *sampler) fresh(ctx context.Context, maxAge time.Duration) (snapshot, []point) {
	if snap, pts := s.current(); s.cfg.Now().Sub(snap.at) <= maxAge {
		return snap, pts
	}
	s.sampling.Lock()
	if snap, _ := s.current(); s.cfg.Now().Sub(snap.at) > maxAge {
		s.sampleLocked(ctx)
	}
	s.sampling.Unlock()
	return s.current()
}

// sample reads Consul, every worker's metrics and Redis (and MySQL every
// MySQLEvery), each bounded by its timeout, and stores the snapshot.
func (s *sampler) sample(ctx context.Context) {
	s.sampling.Lock()
	defer s.sampling.Unlock()
	s.sampleLocked(ctx)
}

func (s *sampler) sampleLocked(ctx context.Context) {
	s.mu.Lock()
	prev := s.last
	s.mu.Unlock()
	now := s.cfg.Now()
	snap := snapshot{at: now, errs: map[string]string{}, service: s.cfg.ServiceName, nKey: s.deps.Cluster.QueueCountKey(),
		mysqlAt: prev.mysqlAt, templates: prev.templates, subs: prev.subs, issued: prev.issued, remaining: prev.remaining}

	var wg sync.WaitGroup
	wg.Go(func() { s.readConsulAndMetrics(ctx, &snap) })
	wg.Go(func() { s.readRedis(ctx, &snap) })
	var mysqlSnap snapshot
	mysqlDue := now.Sub(prev.mysqlAt) >= s.cfg.MySQLEvery
	if mysqlDue {
		mysqlSnap.errs = map[string]string{}
		wg.Go(func() { s.readMySQL(ctx, now, &mysqlSnap) })
	}
	wg.Wait()
	if mysqlDue {
		for k, v := range mysqlSnap.errs {
			snap.errs[k] = v
		}
		if _, failed := mysqlSnap.errs["mysql"]; !failed {
			snap.mysqlAt, snap.templates, snap.subs, snap.issued = now, mysqlSnap.templates, mysqlSnap.subs, mysqlSnap.issued
		}
		if mysqlSnap.remaining != nil {
			snap.remaining = mysqlSnap.remaining
		}
	} else {
		for _, k := range []string{"mysql", "coupons"} {
			if v, ok := prev.errs[k]; ok {
				snap.errs[k] = v
			}
		}
	}

	p := point{at: now, due: snap.metrics.by(mTemplateDue, "template"), published: snap.metrics.by(mTemplatePublished, "template")}
	p.total = snap.metrics.total(mTemplatePublished)
	if _, ok := snap.metrics.sum[mTemplatePublished]; !ok {
		p.total = snap.metrics.total(mPublished)
	}
	s.mu.Lock()
	s.last = snap
	if len(snap.workers) > 0 {
		s.ring.push(p)
	}
	s.mu.Unlock()
}

func (s *sampler) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.EngineTimeout)
}

// readConsulAndMetrics lists the workers, reads N, and scrapes every
// worker that registered an ops address, in parallel, each within
// ScrapeTimeout.
func (s *sampler) readConsulAndMetrics(ctx context.Context, snap *snapshot) {
	snap.metrics = newMetrics()
	cctx, cancel := s.timeout(ctx)
	defer cancel()
	n, idx, found, err := s.deps.Cluster.QueueCount(cctx)
	snap.n, snap.nIndex, snap.nFound = n, idx, found
	if err != nil {
		snap.nErr = err.Error()
	}
	if !found && s.deps.Count != nil {
		snap.n = s.deps.Count() // the default every worker follows
	}
	ws, err := s.deps.Cluster.Workers(cctx, s.cfg.ServiceName)
	if err != nil {
		snap.errs["consul"] = err.Error()
		return
	}
	if len(ws) > s.cfg.MaxWorkers {
		snap.errs["consul"] = "showing the first " + strconv.Itoa(s.cfg.MaxWorkers) + " of " + strconv.Itoa(len(ws)) + " workers"
		ws = ws[:s.cfg.MaxWorkers]
	}
	snap.workers = make([]workerState, len(ws))
	fams := make([]map[string]*dto.MetricFamily, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		snap.workers[i].Worker = w
		addr := w.Meta[opsAddrMeta]
		if addr == "" {
			snap.workers[i].ScrapeErr = "no ops_addr in its Consul registration"
			continue
		}
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, s.cfg.ScrapeTimeout)
			defer cancel()
			f, err := s.deps.Scraper.Scrape(sctx, addr)
			if err != nil {
				snap.workers[i].ScrapeErr = err.Error()
				return
			}
			fams[i] = f
		})
	}
	wg.Wait()
	for i, f := range fams {
		if f == nil {
			continue
		}
		snap.metrics.add(f)
		if bi := f[mBuildInfo]; bi != nil && len(bi.GetMetric()) > 0 {
			for _, l := range bi.GetMetric()[0].GetLabel() {
				if l.GetName() == "version" {
					snap.workers[i].Version = l.GetValue()
				}
			}
		}
	}
}

// readRedis reads the layout, the pause flag, the clock and every queue of
// the span.
func (s *sampler) readRedis(ctx context.Context, snap *snapshot) {
	rctx, cancel := s.timeout(ctx)
	defer cancel()
	err := func() error {
		var err error
		if snap.layout, snap.recorded, err = s.deps.Queues.LayoutStatus(rctx); err != nil {
			return err
		}
		if snap.paused, err = s.deps.Queues.Paused(rctx); err != nil {
			return err
		}
		if snap.redisTime, err = s.deps.Queues.Time(rctx); err != nil {
			return err
		}
		span := snap.layout.Span
		if !snap.recorded {
			// No layout yet (N never changed): the queues are those of
			// the N the workers follow, if known.
			if s.deps.Count == nil {
				return nil
			}
			span = s.deps.Count()
		}
		snap.queues, err = s.deps.Queues.Inspect(rctx, span)
		return err
	}()
	if err != nil {
		snap.errs["redis"] = err.Error()
	}
}

// readMySQL reads the live templates, their subscribers and coupons, and
// their remaining stock in Redis.
func (s *sampler) readMySQL(ctx context.Context, now time.Time, snap *snapshot) {
	mctx, cancel := s.timeout(ctx)
	defer cancel()
	err := func() error {
		ts, err := s.deps.Store.LiveTemplates(mctx, now.Add(-s.cfg.Grace), s.cfg.MaxTemplates)
		if err != nil {
			return err
		}
		snap.templates = ts
		ids := make([]int64, len(ts))
		for i, t := range ts {
			ids[i] = t.ID
		}
		if snap.subs, err = s.deps.Store.Subscribers(mctx, ids); err != nil {
			return err
		}
		snap.issued, err = s.deps.Store.Issued(mctx, ids)
		return err
	}()
	if err != nil {
		snap.errs["mysql"] = err.Error()
		return
	}
	snap.remaining = map[int64]int64{}
	var errs []error
	for _, t := range snap.templates {
		left, err := s.deps.Stock.Remaining(mctx, t.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		snap.remaining[t.ID] = left
	}
	if err := errors.Join(errs...); err != nil {
		snap.errs["coupons"] = err.Error()
	}
}
