package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits and defaults of Config.
const (
	// DefaultPath is where the worker mounts the console.
	DefaultPath = "/console/"
	// DefaultSampleEvery is the sampler's period.
	DefaultSampleEvery = time.Second
	// DefaultHistory is how far back the ring buffer reaches.
	DefaultHistory = 10 * time.Minute
	// MaxSamples bounds the ring buffer whatever History and SampleEvery say.
	MaxSamples = 3600
	// DefaultScrapeTimeout bounds one worker's /metrics scrape.
	DefaultScrapeTimeout = 800 * time.Millisecond
	// DefaultEngineTimeout bounds one read of Redis, MySQL or Consul.
	DefaultEngineTimeout = 2 * time.Second
	// DefaultMySQLEvery is how often the sampler reads MySQL (templates,
	// subscribers, coupons), which is heavier than the rest.
	DefaultMySQLEvery = 2 * time.Second
	// DefaultMaxTemplates caps the live templates shown.
	DefaultMaxTemplates = 16
	// MaxTemplates is the largest MaxTemplates allowed (the metrics'
	// own cap of live templates).
	MaxTemplates = 64
	// DefaultMaxWorkers caps the workers scraped.
	DefaultMaxWorkers = 64
	// DefaultSessionTTL is how long a login lasts.
	DefaultSessionTTL = 12 * time.Hour
	// DefaultMaxSessions caps the sessions kept; the oldest goes first.
	DefaultMaxSessions = 256
	// DefaultIdleAfter is how long the sampler keeps working after the
	// last request.
	DefaultIdleAfter = 5 * time.Minute
	// DefaultRateWindow is the window the publish rate is measured over.
	DefaultRateWindow = 10 * time.Second
	// DefaultGrace keeps a template shown this long after its grab end.
	DefaultGrace = 10 * time.Minute
	// confirmTTL is how long a prepared action waits for its confirm.
	confirmTTL = 2 * time.Minute
)

// Config is how the console runs. A zero field means its default; New calls
// WithDefaults and Validate.
type Config struct {
	// Path is the URL path the console is served under, with leading and
	// trailing slash. Default DefaultPath.
	Path string
	// ServiceName is the workers' Consul service. Required.
	ServiceName string
	// RedisPrefix is shown with pause and resume (they act on every worker
	// of the prefix).
	RedisPrefix string
	// SampleEvery is the sampler's period. Default DefaultSampleEvery.
	SampleEvery time.Duration
	// History is how far back the due/published chart reaches; the ring
	// buffer holds History/SampleEvery samples (at most MaxSamples).
	// Default DefaultHistory.
	History time.Duration
	// ScrapeTimeout bounds each worker's /metrics scrape. Default
	// DefaultScrapeTimeout.
	ScrapeTimeout time.Duration
	// EngineTimeout bounds each read of Redis, MySQL or Consul and each
	// action. Default DefaultEngineTimeout.
	EngineTimeout time.Duration
	// MySQLEvery is how often MySQL is read. Default DefaultMySQLEvery.
	MySQLEvery time.Duration
	// MaxTemplates caps the live templates shown, 1-MaxTemplates. Default
	// DefaultMaxTemplates.
	MaxTemplates int
	// MaxWorkers caps the workers scraped. Default DefaultMaxWorkers.
	MaxWorkers int
	// SessionTTL is how long a login lasts. Default DefaultSessionTTL.
	SessionTTL time.Duration
	// MaxSessions caps the sessions kept. Default DefaultMaxSessions.
	MaxSessions int
	// IdleAfter: the sampler stops working this long after the last
	// request, and starts again with the next. Default DefaultIdleAfter.
	IdleAfter time.Duration
	// RateWindow is the window the publish rate is measured over. Default
	// DefaultRateWindow.
	RateWindow time.Duration
	// Grace keeps a template shown after its grab end. Default
	// DefaultGrace.
	Grace time.Duration
	// SecureCookie forces the Secure attribute on the session cookie; it is
	// set anyway on a request that came over TLS.
	SecureCookie bool
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger gets the console's logs; nil discards them.
	Logger *slog.Logger
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Path == "" {
		c.Path = DefaultPath
	}
	def(&c.SampleEvery, DefaultSampleEvery)
	def(&c.History, DefaultHistory)
	def(&c.ScrapeTimeout, DefaultScrapeTimeout)
	def(&c.EngineTimeout, DefaultEngineTimeout)
	def(&c.MySQLEvery, DefaultMySQLEvery)
	def(&c.SessionTTL, DefaultSessionTTL)
	def(&c.IdleAfter, DefaultIdleAfter)
	def(&c.RateWindow, DefaultRateWindow)
	def(&c.Grace, DefaultGrace)
	if c.MaxTemplates == 0 {
		c.MaxTemplates = DefaultMaxTemplates
	}
	if c.MaxWorkers == 0 {
		c.MaxWorkers = DefaultMaxWorkers
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first unusable setting.
func (c Config) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"SampleEvery", c.SampleEvery}, {"History", c.History}, {"ScrapeTimeout", c.ScrapeTimeout},
		{"EngineTimeout", c.EngineTimeout}, {"MySQLEvery", c.MySQLEvery}, {"SessionTTL", c.SessionTTL},
		{"IdleAfter", c.IdleAfter}, {"RateWindow", c.RateWindow}, {"Grace", c.Grace}} {
		if d.v < 0 {
			return fmt.Errorf("console: %s %v is negative", d.name, d.v)
		}
	}
	switch {
	case !strings.HasPrefix(c.Path, "/") || !strings.HasSuffix(c.Path, "/"):
		return fmt.Errorf("console: path %q must start and end with /", c.Path)
	case c.ServiceName == "":
		return errors.New("console: no Consul service name")
	case c.MaxTemplates < 1 || c.MaxTemplates > MaxTemplates:
		return fmt.Errorf("console: max templates %d is not 1-%d", c.MaxTemplates, MaxTemplates)
	case c.MaxWorkers < 1:
		return fmt.Errorf("console: max workers %d is not positive", c.MaxWorkers)
	case c.MaxSessions < 1:
		return fmt.Errorf("console: max sessions %d is not positive", c.MaxSessions)
	case c.History < c.SampleEvery:
		return fmt.Errorf("console: history %v is shorter than one sample (%v)", c.History, c.SampleEvery)
	}
	return nil
}

// samples is the ring buffer's length.
func (c Config) samples() int { return min(MaxSamples, int(c.History/c.SampleEvery)) }

//go:embed assets
var assets embed.FS

// Console is the web console: an http.Handler, and a sampler that Start
// runs and Stop ends.
type Console struct {
	cfg   Config
	deps  Deps
	log   *slog.Logger
	mux   *http.ServeMux
	pages *template.Template

	sessions *sessions
	pending  *confirms
	sampler  *sampler

	lastSeen atomic.Int64 // unix ms of the last request; the sampler idles without one
	wake     chan struct{}

	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan struct{}
}

// New checks cfg and deps and returns a console; Start runs its sampler.
func New(cfg Config, deps Deps) (*Console, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := deps.check(); err != nil {
		return nil, err
	}
	if deps.Scraper == nil {
		deps.Scraper = NewHTTPScraper()
	}
	pages, err := template.New("").Funcs(template.FuncMap{}).ParseFS(assets, "assets/*.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	c := &Console{
		cfg: cfg, deps: deps, log: cfg.Logger, pages: pages,
		sessions: newSessions(cfg.SessionTTL, cfg.MaxSessions, cfg.Now),
		pending:  newConfirms(cfg.Now),
		wake:     make(chan struct{}, 1),
	}
	c.sampler = newSampler(cfg, deps)
	c.routes()
	return c, nil
}

// routes builds the mux: the login form and static assets are open, every
// other route needs an operator.
func (c *Console) routes() {
	p := c.cfg.Path
	static, _ := fs.Sub(assets, "assets")
	m := http.NewServeMux()
	m.Handle("GET "+p+"static/", http.StripPrefix(p+"static/", http.FileServerFS(static)))
	m.HandleFunc("GET "+p+"login", c.loginForm)
	m.HandleFunc("POST "+p+"login", c.login)
	m.Handle("POST "+p+"logout", c.operator(c.logout))
	m.Handle("GET "+p+"{$}", c.operator(c.index))
	m.Handle("GET "+p+"api/overview", c.operator(c.overview))
	m.Handle("GET "+p+"api/user/{user_id}", c.operator(c.user))
	m.Handle("GET "+p+"api/audit", c.operator(c.audit))
	m.Handle("POST "+p+"api/actions", c.operator(c.prepare))
	m.Handle("POST "+p+"api/actions/{id}/confirm", c.operator(c.confirm))
	m.Handle("POST "+p+"api/actions/{id}/cancel", c.operator(c.cancelAction))
	c.mux = m
}

// ServeHTTP serves the console; r's path starts with Config.Path.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	// same-origin, not no-referrer: with no-referrer a browser sends
	// "Origin: null" on form posts, which sameOrigin refuses.
	w.Header().Set("Referrer-Policy", "same-origin")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
	w.Header().Set("Cache-Control", "no-store")
	c.seen()
	c.mux.ServeHTTP(w, r)
}

// seen records a request and wakes an idle sampler.
func (c *Console) seen() {
	c.lastSeen.Store(c.cfg.Now().UnixMilli())
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Start runs the sampler until Stop or ctx is done.
func (c *Console) Start(ctx context.Context) error {
	ctx, c.cancel = context.WithCancel(ctx)
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		c.run(ctx)
	}()
	return nil
}

// Stop ends the sampler and waits for it. It is idempotent and safe without
// Start.
func (c *Console) Stop() {
	c.stopOnce.Do(func() {
		if c.cancel != nil {
			c.cancel()
			<-c.done
		}
	})
}

// run samples every SampleEvery while someone looks; idle, it waits for a
// request.
func (c *Console) run(ctx context.Context) {
	tick := time.NewTicker(c.cfg.SampleEvery)
	defer tick.Stop()
	for {
		idle := c.cfg.Now().Sub(time.UnixMilli(c.lastSeen.Load())) > c.cfg.IdleAfter
		if !idle {
			c.sampler.sample(ctx)
		}
		wait := tick.C
		if idle {
			select {
			case <-ctx.Done():
				return
			case <-c.wake:
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-wait:
		}
	}
}
