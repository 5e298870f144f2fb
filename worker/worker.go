package worker

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
	"github.com/robfig/cron/v3"

	"couponpush/balance"
	"couponpush/cluster"
	"couponpush/config"
	"couponpush/coupon"
	"couponpush/httpapi"
	"couponpush/metrics"
	"couponpush/migrate"
	"couponpush/push"
	"couponpush/queue"
	"couponpush/reindex"
	"couponpush/resize"
	"couponpush/scheduler"
	"couponpush/subscription"
	"couponpush/template"
)

// Run runs one worker until ctx is done, then drains and returns. It returns
// an error when an engine cannot be reached at start-up or a part fails.
func Run(ctx context.Context, cfg config.Worker, log *slog.Logger) error {
	w, err := Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("stopping: draining work in hand")
	return w.Stop()
}

// Worker is one running worker: what it opened and the roles it runs.
type Worker struct {
	log     *slog.Logger
	cfg     config.Worker
	rdb     redis.UniversalClient
	db      *sql.DB
	consul  *cluster.Client
	watcher *cluster.QueueCountWatcher
	reg     *cluster.Registration
	sched   *scheduler.Scheduler
	pub     *push.Publisher
	http    *http.Server
	httpErr chan error

	cron       *cron.Cron
	cancelCron context.CancelFunc

	resize     *resize.Coordinator
	stopResize context.CancelFunc
	resizeDone chan struct{}

	coupons      *coupon.Service
	couponDB     *sql.DB // the claim writer's pool
	couponCron   *cron.Cron
	cancelCoupon context.CancelFunc
}

// Start connects to the engines, applies migrations and starts the roles cfg
// names. cfg must be validated. Stop ends it.
func Start(ctx context.Context, cfg config.Worker, log *slog.Logger) (w *Worker, err error) {
	w = &Worker{log: log, cfg: cfg}
	defer func() {
		if err != nil {
			w.closeEngines()
		}
	}()
	reg := metrics.NewRegistry()

	w.rdb = redis.NewUniversalClient(&redis.UniversalOptions{Addrs: cfg.RedisAddrs, PoolSize: 128})
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := w.rdb.Ping(pctx).Err(); err != nil {
		return nil, fmt.Errorf("redis %v unreachable: %w", cfg.RedisAddrs, err)
	}

	if err := migrate.EnsureDatabase(pctx, cfg.MySQLDSN); err != nil {
		return nil, fmt.Errorf("mysql: %w", err)
	}
	w.db, err = openMySQL(cfg.MySQLDSN)
	if err != nil {
		return nil, err
	}
	if err := w.db.PingContext(pctx); err != nil {
		return nil, fmt.Errorf("mysql unreachable: %w", err)
	}
	applied, err := migrate.Up(ctx, w.db)
	if err != nil {
		return nil, fmt.Errorf("mysql migrations: %w", err)
	}
	if len(applied) > 0 {
		log.Info("applied migrations", "versions", applied)
	}

	consul, err := cluster.New(cfg.ConsulAddr, cfg.ConsulPrefix, log)
	if err != nil {
		return nil, fmt.Errorf("consul: %w", err)
	}
	w.consul = consul
	w.watcher = consul.NewQueueCountWatcher(cfg.DefaultQueueCount)
	if err := w.watcher.Start(ctx); err != nil {
		return nil, fmt.Errorf("queue count watcher: %w", err)
	}
	reg.GaugeFunc("couponpush_queue_count", "Queue count N this worker follows.", func() float64 { return float64(w.watcher.Count()) })

	idx := queue.New(w.rdb, queue.Options{Prefix: cfg.RedisPrefix, Owner: cfg.WorkerID})
	router := idx.NewRouter(w.watcher.Count)
	if _, err := router.Refresh(pctx); err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	if err := w.startResize(ctx, consul, idx, router, reg); err != nil {
		return nil, err
	}
	store := template.NewStore(w.db, template.StoreConfig{})
	tiers := template.NewRedis(w.rdb, cfg.RedisPrefix, store)
	templates := template.NewCache(tiers, template.CacheConfig{})
	if w.coupons, err = w.newCoupons(templates, tiers); err != nil {
		return nil, err
	}
	subs := subscription.NewService(w.db, templates, router,
		subscription.Config{DefaultLead: cfg.Lead.Duration(), Logger: log})

	health := []func() error{}
	if cfg.HasRole(config.RoleScheduler) {
		if err := w.startScheduler(ctx, idx, router, templates, subs, reg); err != nil {
			return nil, err
		}
		health = append(health, w.sched.Healthy)
	}
	if cfg.HasRole(config.RoleCron) {
		job, err := reindex.New(w.db, router, reindex.Config{Margin: cfg.MergeWindow.Duration() + 20*time.Second, Logger: log})
		if err != nil {
			return nil, err
		}
		w.startCron(ctx, consul, job, reg)
	}
	if cfg.HasRole(config.RoleCoupon) {
		w.startCoupon(ctx, consul, w.coupons, tiers, reg)
	}
	host, port := splitHostPort(cfg.HTTPAddr)
	if cfg.HasRole(config.RoleAPI) {
		if err := w.startHTTP(consul, templates, subs, reg); err != nil {
			return nil, err
		}
	}
	w.reg = consul.Register(cluster.Service{
		ID: cfg.WorkerID, Name: cfg.ServiceName, Address: host, Port: port,
		Meta: map[string]string{"roles": fmt.Sprint(cfg.Roles)},
	}, func() error { return errors.Join(callAll(health)...) })
	if err := w.reg.Start(ctx); err != nil {
		return nil, fmt.Errorf("consul registration: %w", err)
	}
	log.Info("worker started", "worker_id", cfg.WorkerID, "roles", cfg.Roles, "http", cfg.HTTPAddr, "queues", w.watcher.Count())
	return w, nil
}

func (w *Worker) startScheduler(ctx context.Context, idx *queue.Client, router *queue.Router, templates *template.Cache, subs *subscription.Service, reg *metrics.Registry) error {
	cfg := w.cfg
	var err error
	w.pub, err = push.NewPublisher(push.PublisherConfig{NSQDAddr: cfg.NSQDAddr, Topic: cfg.Topic, Logger: w.log})
	if err != nil {
		return fmt.Errorf("nsq publisher: %w", err)
	}
	bal, err := balance.New(w.rdb, idx, balance.Config{Prefix: cfg.RedisPrefix, Lease: cfg.Lease.Duration(), RenewEvery: cfg.LeaseRenew.Duration(), Logger: w.log})
	if err != nil {
		return err
	}
	late := reg.Histogram("couponpush_push_lateness_seconds",
		"Time from a push's due time to nsqd accepting it (by the Redis clock).",
		metrics.ExponentialBuckets(0.001, 2, 16))
	w.sched, err = scheduler.New(scheduler.Config{
		Count:        router.Span,
		MergeWindow:  cfg.MergeWindow.Duration(),
		Tick:         cfg.Tick.Duration(),
		Deadline:     cfg.InFlightDeadline.Duration(),
		PopBatch:     cfg.PopBatch,
		Slots:        cfg.Slots,
		DrainTimeout: cfg.DrainTimeout.Duration(),
		MarkBatch:    cfg.MarkBatch,
		MarkInterval: cfg.MarkInterval.Duration(),
		Observe:      func(_ push.Push, d time.Duration) { late.ObserveDuration(max(d, 0)) },
		BeforeAck:    failpoint(w.log),
		Logger:       w.log,
	}, idx, bal, w.pub, newGrabStarts(templates), marker{subs})
	if err != nil {
		return err
	}
	st := w.sched.Stats()
	reg.CounterFunc("couponpush_pushes_published_total", "Pushes accepted by nsqd, redeliveries included.", func() float64 { return float64(st.Published.Load()) })
	reg.CounterFunc("couponpush_pushes_recovered_total", "Pushes republished from an expired or orphaned flight.", func() float64 { return float64(st.Recovered.Load()) })
	reg.CounterFunc("couponpush_leases_lost_total", "Queue leases lost while working.", func() float64 { return float64(st.LeasesLost.Load()) })
	reg.CounterFunc("couponpush_reminders_marked_total", "Reminders recorded as sent in MySQL.", func() float64 { return float64(st.Marked.Load()) })
	reg.GaugeFunc("couponpush_mark_lag_seconds", "Age of the oldest acked push whose sent-mark has not reached MySQL.", func() float64 { return float64(st.MarkLagMs.Load()) / 1000 })
	reg.CounterFunc("couponpush_publish_errors_total", "Publishes abandoned (lease lost or shutdown) and left for redelivery.", func() float64 { return float64(st.PublishErrs.Load()) })
	return w.sched.Start(ctx)
}

func (w *Worker) startHTTP(consul *cluster.Client, templates *template.Cache, subs *subscription.Service, reg *metrics.Registry) error {
	reqs := reg.HistogramVec("couponpush_http_request_seconds", "HTTP request latency by route and status.",
		metrics.ExponentialBuckets(0.0005, 2, 14), "route", "status")
	h := httpapi.New(httpapi.Config{
		Templates:     templates,
		Subscriptions: subs,
		Coupons:       w.coupons,
		Ready: map[string]func(context.Context) error{
			"redis":  func(ctx context.Context) error { return w.rdb.Ping(ctx).Err() },
			"mysql":  w.db.PingContext,
			"nsqd":   func(ctx context.Context) error { return dialCheck(ctx, w.cfg.NSQDAddr) },
			"consul": consul.Ping,
		},
		Metrics: reg.Handler(),
		Observe: func(route string, status int, d time.Duration) {
			reqs.With(route, strconv.Itoa(status)).ObserveDuration(d)
		},
		Logger: w.log,
	})
	ln, err := net.Listen("tcp", w.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", w.cfg.HTTPAddr, err)
	}
	w.http = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	w.httpErr = make(chan error, 1)
	go func() { w.httpErr <- w.http.Serve(ln) }()
	return nil
}

// Stats are the scheduler's counters, nil when the role does not run here.
func (w *Worker) Stats() *scheduler.Stats {
	if w.sched == nil {
		return nil
	}
	return w.sched.Stats()
}

// Stop drains in the order SIGTERM asks: stop taking requests and work,
// finish or hand back pushes in hand, deregister, close engines. Call it once.
func (w *Worker) Stop() error {
	var errs []error
	if w.http != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := w.http.Shutdown(sctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		cancel()
		if err := <-w.httpErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("http: %w", err))
		}
	}
	w.stopCron()
	w.stopCoupon()
	if w.coupons != nil {
		w.coupons.Stop()
	}
	if w.sched != nil {
		w.sched.Stop()
	}
	w.stopResizer()
	if w.pub != nil {
		w.pub.Stop()
	}
	if w.reg != nil {
		w.reg.Stop()
	}
	w.closeEngines()
	w.log.Info("worker stopped")
	return errors.Join(errs...)
}

// startResize follows the queue layout in Redis and, in workers that run
// the scheduler, competes to coordinate changes of N (see package resize).
func (w *Worker) startResize(ctx context.Context, consul *cluster.Client, idx *queue.Client, router *queue.Router, reg *metrics.Registry) error {
	var err error
	w.resize, err = resize.New(idx, resize.Config{
		Target:  w.watcher.Count,
		Changes: w.watcher.Changes(),
		Lock:    consul.Lock,
		Router:  router,
		Lead:    w.cfg.HasRole(config.RoleScheduler),
		Logger:  w.log,
	})
	if err != nil {
		return err
	}
	st := w.resize.Stats()
	reg.CounterFunc("couponpush_resize_users_moved_total", "Users this worker moved to a new queue while N changed.", func() float64 { return float64(st.Moved.Load()) })
	reg.CounterFunc("couponpush_resize_moves_total", "Changes of N this worker coordinated to the end.", func() float64 { return float64(st.Moves.Load()) })
	reg.GaugeFunc("couponpush_resize_coordinator", "1 while this worker holds the resize lock and coordinates changes of N.", func() float64 {
		if st.Leading.Load() {
			return 1
		}
		return 0
	})
	reg.CounterFunc("couponpush_resize_errors_total", "Failed resize steps (each is retried).", func() float64 { return float64(st.MoveErrs.Load()) })
	reg.GaugeFunc("couponpush_queue_span", "Queues this worker visits: N, plus queues a smaller N left until they drain.", func() float64 { return float64(router.Span()) })
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.stopResize, w.resizeDone = cancel, make(chan struct{})
	go func() {
		defer close(w.resizeDone)
		w.resize.Run(rctx)
	}()
	return nil
}

func (w *Worker) stopResizer() {
	if w.stopResize != nil {
		w.stopResize()
		<-w.resizeDone
		w.stopResize = nil
	}
}

func (w *Worker) closeEngines() {
	w.stopResizer()
	if w.watcher != nil {
		w.watcher.Stop()
	}
	if w.consul != nil {
		w.consul.Close()
	}
	if w.db != nil {
		w.db.Close()
	}
	if w.couponDB != nil {
		w.couponDB.Close()
	}
	if w.rdb != nil {
		w.rdb.Close()
	}
}

func openMySQL(dsn string) (*sql.DB, error) {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("mysql dsn: %w", err)
	}
	c.ParseTime = true
	c.Loc = time.UTC
	conn, err := mysql.NewConnector(c)
	if err != nil {
		return nil, fmt.Errorf("mysql dsn: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(128)
	db.SetMaxIdleConns(128)
	db.SetConnMaxIdleTime(time.Minute)
	return db, nil
}

func dialCheck(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

func splitHostPort(addr string) (string, int) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	port, _ := strconv.Atoi(p)
	return host, port
}

func callAll(fs []func() error) []error {
	var errs []error
	for _, f := range fs {
		errs = append(errs, f())
	}
	return errs
}
