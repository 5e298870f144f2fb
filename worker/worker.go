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
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"couponpush/auth"
	"couponpush/balance"
	"couponpush/cluster"
	"couponpush/config"
	"couponpush/coupon"
	"couponpush/httpapi"
	"couponpush/internal/engine"
	"couponpush/migrate"
	"couponpush/push"
	"couponpush/queue"
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

// Worker is one running worker: its parts, and what they opened and built.
type Worker struct {
	log   *slog.Logger
	cfg   config.Worker
	m     *workerMetrics
	parts parts
	// stopErrs are the errors parts met while stopping, for Stop to return.
	stopErrs []error

	// Set by the parts as they start, in the order of partList; a part
	// uses only what the parts before it set.
	consul    *cluster.Client
	rdb       redis.UniversalClient
	db        *sql.DB
	couponDB  *sql.DB // the claim writer's pool
	dsn       string  // the MySQL DSN with credentials, TLS and time limits (holds the password)
	watcher   *cluster.QueueCountWatcher
	idx       *queue.Client
	router    *queue.Router
	tiers     *template.Redis
	templates *template.Cache
	coupons   *coupon.Service
	subs      *subscription.Service
	reg       *cluster.Registration
	pub       *push.Publisher
	sched     *scheduler.Scheduler
	// running is sched once started: the health check reads it.
	running atomic.Pointer[scheduler.Scheduler]

	// The ops listener (ops.go) serves while the other parts start and
	// stop, so what it reads is set atomically.
	opsAddr string                           // where it listens; set before the other parts start
	checks  atomic.Pointer[map[string]check] // the readiness checks, once the engines are open
	started atomic.Bool                      // every part started and Stop not called
	console atomic.Pointer[http.Handler]     // the console under /console/ (mountConsole)
}

// Start connects to the engines, applies migrations and starts the roles cfg
// names: it starts the parts of partList in order, and if one fails, stops
// those it started in reverse. cfg must be validated. Stop ends it.
func Start(ctx context.Context, cfg config.Worker, log *slog.Logger) (*Worker, error) {
	w := &Worker{log: log, cfg: cfg, m: newMetrics()}
	consul, err := cluster.New(cluster.Config{Addr: cfg.ConsulAddr, Prefix: cfg.ConsulPrefix, Auth: engine.ConsulAuth(cfg.Engines), Logger: log})
	if err != nil {
		return nil, fmt.Errorf("consul: %w", err)
	}
	w.consul = consul // closed by the engines part
	w.parts = parts{log: log, list: w.partList()}
	if err := w.parts.start(ctx); err != nil {
		return nil, err
	}
	w.started.Store(true)
	log.Info("worker started", "worker_id", cfg.WorkerID, "roles", cfg.Roles, "http", cfg.HTTPAddr, "ops", w.opsAddr, "queues", w.watcher.Count())
	return w, nil
}

// partList returns the worker's parts in start order. Stop takes them down
// in reverse, which is the order a SIGTERM asks for (the one place it is
// written). The ops listener (/healthz, /readyz, /metrics, /console/)
// starts first and stops last, so it answers through start and drain.
//
//  1. Stop taking work: the coupon jobs and the reindex safety net stop
//     (waiting for a run in hand); the scheduler stops picking.
//  2. Drain what is in hand: the scheduler publishes and acks the pushes
//     it holds (up to drain-timeout) and flushes sent-marks; then the
//     publisher closes.
//  3. Deregister from Consul, while the HTTP port still answers: Consul
//     never shows this worker passing with its port closed.
//  4. Close the listener: the HTTP server stops accepting and finishes the
//     requests in hand; then the claim writer commits their claims.
//  5. Close the engines: the resize coordinator and the queue count
//     watcher end, then the Consul, MySQL and Redis clients close.
//  6. Close the ops listener.
func (w *Worker) partList() []part {
	cfg := w.cfg
	list := []part{
		w.opsPart(),
		newPart("engines", w.openEngines, w.closeEngines),
		newPart("queue count watcher", w.startWatcher, func() {
			if w.watcher != nil {
				w.watcher.Stop()
			}
		}),
		w.resizePart(),
		newPart("coupon service", w.newCoupons, w.stopCoupons),
	}
	if cfg.HasRole(config.RoleAPI) {
		w.m.apiRole()
		list = append(list, w.httpPart())
	}
	list = append(list, newPart("consul registration", w.register, func() {
		if w.reg != nil {
			w.reg.Stop()
		}
	}), w.consolePart())
	if cfg.HasRole(config.RoleScheduler) {
		list = append(list,
			newPart("nsq publisher", w.newPublisher, func() {
				if w.pub != nil {
					w.pub.Stop()
				}
			}),
			newPart("scheduler", w.startScheduler, func() {
				if w.sched != nil {
					w.sched.Stop()
				}
			}))
	}
	if cfg.HasRole(config.RoleCron) {
		w.m.cronRole()
		list = append(list, w.reindexPart())
	}
	if cfg.HasRole(config.RoleCoupon) {
		w.m.couponRole()
		list = append(list, w.couponJobs()...)
		list = append(list, w.templateStatsPart())
	}
	return list
}

// Stats are the scheduler's counters, nil when the role does not run here.
func (w *Worker) Stats() *scheduler.Stats {
	if w.sched == nil {
		return nil
	}
	return w.sched.Stats()
}

// Stop drains in the order SIGTERM asks (see partList): stop taking work,
// finish or hand back what is in hand, deregister, close the listener,
// close engines. It is idempotent.
func (w *Worker) Stop() error {
	w.started.Store(false)
	w.parts.stop()
	w.log.Info("worker stopped")
	return errors.Join(w.stopErrs...)
}

// openEngines connects to Redis and MySQL and applies the migrations.
func (w *Worker) openEngines(ctx context.Context) error {
	cfg := w.cfg
	opts, err := engine.RedisOptions(cfg.RedisAddrs, cfg.Engines)
	if err != nil {
		return err
	}
	opts.PoolSize = 128
	w.rdb = redis.NewUniversalClient(opts)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := w.rdb.Ping(pctx).Err(); err != nil {
		return fmt.Errorf("redis %v unreachable: %w", cfg.RedisAddrs, err)
	}

	if w.dsn, err = engine.MySQLDSN(cfg.MySQLDSN, cfg.Engines); err != nil {
		return err
	}
	if err := migrate.EnsureDatabase(pctx, w.dsn); err != nil {
		return fmt.Errorf("mysql: %w", err)
	}
	if w.db, err = openMySQL(w.dsn); err != nil {
		return err
	}
	if err := w.db.PingContext(pctx); err != nil {
		return fmt.Errorf("mysql unreachable: %w", err)
	}
	applied, err := migrate.Up(ctx, w.db)
	if err != nil {
		return fmt.Errorf("mysql migrations: %w", err)
	}
	if len(applied) > 0 {
		w.log.Info("applied migrations", "versions", applied)
	}
	checks := w.readyChecks()
	w.checks.Store(&checks)
	return nil
}

func (w *Worker) closeEngines() {
	w.consul.Close()
	if w.db != nil {
		w.db.Close()
	}
	if w.rdb != nil {
		w.rdb.Close()
	}
}

// startWatcher follows the queue count N in Consul.
func (w *Worker) startWatcher(ctx context.Context) error {
	w.watcher = w.consul.NewQueueCountWatcher(w.cfg.DefaultQueueCount)
	if err := w.watcher.Start(ctx); err != nil {
		return err
	}
	w.m.watchQueueCount(w.watcher.Count)
	return nil
}

// resizePart follows the queue layout in Redis (the router every role
// routes users with) and, in workers that run the scheduler, competes to
// coordinate changes of N (see package resize).
func (w *Worker) resizePart() part {
	var cancel context.CancelFunc
	done := make(chan struct{})
	return newPart("resize coordinator", func(ctx context.Context) error {
		idx, err := queue.New(w.rdb, queue.Options{Prefix: w.cfg.RedisPrefix, Owner: w.cfg.WorkerID, PrepareAhead: w.cfg.Ahead(),
			ClassWindow: time.Duration(w.cfg.MergeWindow), Ageing: time.Duration(w.cfg.PriorityAgeing)})
		if err != nil {
			return err
		}
		w.idx = idx
		w.router = w.idx.NewRouter(w.watcher.Count)
		rctx, stop := context.WithTimeout(ctx, 5*time.Second)
		defer stop()
		if _, err := w.router.Refresh(rctx); err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		c, err := resize.New(w.idx, resize.Config{
			Target:  w.watcher.Count,
			Changes: w.watcher.Changes(),
			Lock:    w.consul.Lock,
			Router:  w.router,
			Lead:    w.cfg.HasRole(config.RoleScheduler),
			Logger:  w.log,
		})
		if err != nil {
			return err
		}
		w.m.watchResize(c.Stats(), w.router.Span)
		var runCtx context.Context
		runCtx, cancel = context.WithCancel(context.WithoutCancel(ctx))
		go func() {
			defer close(done)
			c.Run(runCtx)
		}()
		return nil
	}, func() {
		if cancel != nil {
			cancel()
			<-done
		}
	})
}

// httpPart serves the HTTP API on cfg.HTTPAddr.
func (w *Worker) httpPart() part {
	var srv *http.Server
	served := make(chan error, 1)
	return newPart("http listener", func(context.Context) error {
		authn, err := w.authenticator()
		if err != nil {
			return err
		}
		guard, err := w.newGuard()
		if err != nil {
			return err
		}
		h, err := httpapi.New(httpapi.Config{
			Templates:     w.templates,
			Subscriptions: w.subs,
			Coupons:       w.coupons,
			Ready:         readyMap(w.readyChecks()),
			Metrics:       w.m.handler(),
			Started:       w.m.startRequest,
			Observe:       w.m.observeRequest,
			OnClaim:       w.m.observeClaim,
			Logger:        w.log,
			Auth:          authn,
			AuthOff:       w.cfg.Auth == config.AuthOff,

			Guard:          guard,
			TrustedProxies: w.cfg.TrustedProxyPrefixes(),
			RequestTimeout: w.cfg.RequestTimeout.Duration(),
			MaxInFlight:    w.cfg.MaxInFlight,
		})
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", w.cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", w.cfg.HTTPAddr, err)
		}
		srv = newHTTPServer(w.cfg, h)
		go func() { served <- srv.Serve(ln) }()
		return nil
	}, func() {
		if srv == nil {
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			w.stopErrs = append(w.stopErrs, fmt.Errorf("http shutdown: %w", err))
		}
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			w.stopErrs = append(w.stopErrs, fmt.Errorf("http: %w", err))
		}
	})
}

// authenticator reads the worker's tokens and keys; nil when auth is off
// (config.Validate allowed that only on loopback).
func (w *Worker) authenticator() (*auth.Authenticator, error) {
	if w.cfg.Auth == config.AuthOff {
		w.log.Warn("auth is off: every route is open to anyone who reaches the listener", "http", w.cfg.HTTPAddr)
		return nil, nil
	}
	c, err := auth.Load(w.cfg.AuthSources())
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	a, err := auth.New(c)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	w.log.Info("auth on", "operator_tokens", len(c.OperatorTokens), "hs256", len(c.HS256Secret) > 0, "public_keys", len(c.PublicKeys))
	return a, nil
}

// register keeps this worker registered in Consul, passing while the
// scheduler (where it runs) is healthy.
func (w *Worker) register(ctx context.Context) error {
	host, port := splitHostPort(w.cfg.HTTPAddr)
	w.reg = w.consul.Register(cluster.Service{
		ID: w.cfg.WorkerID, Name: w.cfg.ServiceName, Address: host, Port: port,
		Meta: map[string]string{"roles": fmt.Sprint(w.cfg.Roles), "ops_addr": w.opsAddr},
	}, func() error {
		if s := w.running.Load(); s != nil {
			return s.Healthy()
		}
		return nil // not started yet, or not a role here
	})
	return w.reg.Start(ctx)
}

// newPublisher prepares the NSQ publisher; it connects on first use.
func (w *Worker) newPublisher(context.Context) error {
	auth, err := engine.NSQ(w.cfg.Engines)
	if err != nil {
		return err
	}
	w.pub, err = push.NewPublisher(push.PublisherConfig{NSQDAddr: w.cfg.NSQDAddr, Topic: w.cfg.Topic, NSQ: auth, Logger: w.log})
	return err
}

// startScheduler runs the scheduler: it takes queue leases and pushes due
// reminders through the publisher.
func (w *Worker) startScheduler(ctx context.Context) error {
	cfg := w.cfg
	bal, err := balance.New(w.rdb, w.idx, balance.Config{Prefix: cfg.RedisPrefix, Lease: cfg.Lease.Duration(), RenewEvery: cfg.LeaseRenew.Duration(), Logger: w.log})
	if err != nil {
		return err
	}
	fp := failpoints(w.log)
	w.sched, err = scheduler.New(scheduler.Config{
		Count:         w.router.Span,
		MergeWindow:   cfg.MergeWindow.Duration(),
		Tick:          cfg.Tick.Duration(),
		Deadline:      cfg.InFlightDeadline.Duration(),
		PopBatch:      cfg.PopBatch,
		PrepareAhead:  cfg.Ahead(),
		Ageing:        cfg.PriorityAgeing.Duration(),
		Slots:         cfg.Slots,
		DrainTimeout:  cfg.DrainTimeout.Duration(),
		MarkBatch:     cfg.MarkBatch,
		MarkInterval:  cfg.MarkInterval.Duration(),
		Observe:       w.m.observePush,
		Taken:         w.m.observeTaken,
		BeforeAck:     fp.beforeAck,
		BeforePublish: fp.beforePublish,
		AfterPrepare:  fp.afterPrepare,
		ClockSkew:     fp.clockSkew,
		Logger:        w.log,
	}, scheduler.Deps{Index: w.idx, Balancer: bal, Publisher: w.pub, Templates: newGrabStarts(w.templates), Marker: marker{w.subs}})
	if err != nil {
		return err
	}
	w.m.watchScheduler(w.sched, w.idx, w.router.Span, cfg.WorkerID, func(ctx context.Context, id int64) (templateInfo, error) {
		t, err := w.templates.Get(ctx, id)
		return templateInfo{grabStart: t.GrabStart, grabEnd: t.GrabEnd}, err
	})
	if err := w.sched.Start(ctx); err != nil {
		return err
	}
	w.running.Store(w.sched)
	return nil
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
