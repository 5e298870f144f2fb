package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/go-sql-driver/mysql"

	"couponpush/cluster"
	"couponpush/coupon"
	"couponpush/queue"
	"couponpush/scheduler"
	"couponpush/subscription"
)

// Roles a worker process can take; a Worker with no Roles takes them all.
const (
	RoleAPI       = "api"       // serves the HTTP API
	RoleScheduler = "scheduler" // pops due reminders and publishes them to NSQ
	RoleCron      = "cron"      // runs the safety-net re-index of the Redis schedule index (package reindex)
	RoleCoupon    = "coupon"    // coupon jobs: template cache refresh, expiry sweep, stock reconcile
)

// AllRoles lists every role, in the order they start.
var AllRoles = []string{RoleAPI, RoleScheduler, RoleCron, RoleCoupon}

// Worker is the configuration of cmd/worker. A zero field means its
// default; call WithDefaults (LoadWorker does) and then Validate.
type Worker struct {
	// Roles this process takes: api, scheduler, cron, coupon. Empty means
	// all of them.
	Roles []string `json:"roles"`
	// HTTPAddr is where the api role listens (also /healthz, /readyz and
	// /metrics). Default 127.0.0.1:8080.
	HTTPAddr string `json:"http_addr"`
	// OpsAddr is the ops listener every worker runs, whatever its roles:
	// /healthz, /readyz, /metrics without auth, and the operator console
	// under /console/. Default 127.0.0.1:9090.
	OpsAddr string `json:"ops_addr"`
	// RedisAddrs are host:port addresses of Redis: one means a standalone
	// server, several are the seeds of a Redis Cluster. Required.
	RedisAddrs []string `json:"redis_addrs"`
	// RedisPrefix starts every Redis key, so deployments and test runs can
	// share one Redis. It may not contain braces (they are Redis Cluster
	// hash tags). Default "couponpush".
	RedisPrefix string `json:"redis_prefix"`
	// MySQLDSN is the go-sql-driver/mysql DSN, including the database name,
	// e.g. "user:pass@tcp(127.0.0.1:3306)/couponpush?parseTime=true".
	// Required.
	MySQLDSN string `json:"mysql_dsn"`
	// NSQDAddr is the TCP address (host:port) of the nsqd that push batches
	// are published to. Required when the scheduler role runs.
	NSQDAddr string `json:"nsqd_addr"`
	// Topic is the NSQ topic the message center consumes: 1-64 characters
	// of [.a-zA-Z0-9_-], not #ephemeral. Default "coupon_push".
	Topic string `json:"topic"`
	// ConsulAddr is the Consul agent's HTTP address, host:port, optionally
	// with an http:// or https:// scheme. Default 127.0.0.1:8500.
	ConsulAddr string `json:"consul_addr"`
	// ConsulPrefix starts every Consul KV key this deployment uses (the
	// queue count lives at <prefix>/queues/count). Default "couponpush".
	ConsulPrefix string `json:"consul_prefix"`
	// ServiceName is the Consul service the worker registers as. Default
	// "couponpush-worker".
	ServiceName string `json:"service_name"`
	// WorkerID names this process in Consul and in leases; it must be unique
	// among live workers. Default <hostname>-<pid>.
	WorkerID string `json:"worker_id"`
	// DefaultQueueCount is the queue count N used while the Consul key is
	// absent, 1-cluster.MaxQueueCount (65536). Default 16.
	DefaultQueueCount int `json:"default_queue_count"`
	// Lead is how long before a coupon's grab start its reminder is pushed,
	// for subscriptions that do not ask for their own. Default 60s.
	Lead Duration `json:"lead"`
	// MergeWindow: a push also carries the user's other items due within
	// this long after its earliest one (never delaying that one). Zero means
	// the default; set 1ms to practically switch merging off. Default 10s.
	MergeWindow Duration `json:"merge_window"`
	// Tick is how often the scheduler looks for due queues. Must be shorter
	// than Lease. Default 20ms.
	Tick Duration `json:"tick"`
	// Lease is how long a worker owns a queue without renewing; a killed
	// worker's queues are taken over after this. Default 1s.
	Lease Duration `json:"lease"`
	// LeaseRenew is how often a held lease is renewed; must be shorter than
	// Lease. Default 250ms.
	LeaseRenew Duration `json:"lease_renew"`
	// InFlightDeadline is how long a popped push may stay unacknowledged
	// before recovery republishes it. Default 10s.
	InFlightDeadline Duration `json:"in_flight_deadline"`
	// MarkInterval: sent-marks are written to MySQL once this worker's
	// deliveries have paused this long and no queue has been due for
	// longer (a burst another worker drains counts too), so bookkeeping
	// does not compete with a burst; a mark never waits more than 10s.
	// Default 200ms.
	MarkInterval Duration `json:"mark_interval"`
	// DrainTimeout bounds how long shutdown waits for in-flight work before
	// handing it back. Default 15s.
	DrainTimeout Duration `json:"drain_timeout"`
	// WorkAhead is on or off: on, a scheduler takes reminders due within
	// PrepareAhead and prepares their pushes ahead (merged, ids fixed,
	// encoded, stored in Redis), so that at due only the publish is left.
	// Every worker of one Redis prefix must agree. Default on.
	WorkAhead string `json:"work_ahead"`
	// PrepareAhead is how long before due work is prepared when WorkAhead
	// is on, 1ms-1m. Default 10s: on a slow day two cores prepare about
	// 100,000 pushes a second, so a drop of a million is ready by due
	// (docs/bench.md); a queue's prepared work stays bounded by
	// queue.DefaultMaxReady whatever the horizon.
	PrepareAhead Duration `json:"prepare_ahead"`
	// PriorityAgeing is how much longer each priority below high may wait
	// when more is due than one pop takes: a normal push due this long
	// before a high one goes first, a low one twice this long before, so
	// a backlog of lower priority is never starved. 1ms-1h. Default 10s.
	PriorityAgeing Duration `json:"priority_ageing"`
	// PopBatch is the most users one pop call takes, 1-queue.MaxPopUsers
	// (5000). Default 1000.
	PopBatch int `json:"pop_batch"`
	// Slots is how many queues one process works at once,
	// 1-scheduler.MaxSlots (1024). Default 4.
	Slots int `json:"slots"`
	// MarkBatch is the most rows one sent-mark UPDATE touches,
	// 1-subscription.MarkSentBatch (1000). Default 1000.
	MarkBatch int `json:"mark_batch"`
	// CouponReconcileDeadline: the coupon role settles a claim still in
	// flight after this long, from MySQL. It must exceed the claim write
	// budget (coupon.DefaultWriteBudget, 10s) plus the longest an INSERT
	// can wait on a lock (innodb_lock_wait_timeout, 50s by default).
	// Default 2m.
	CouponReconcileDeadline Duration `json:"coupon_reconcile_deadline"`
	// CouponReconcileEvery is how often the coupon role compares Redis
	// stock with MySQL and repairs drift. Default 30s.
	CouponReconcileEvery Duration `json:"coupon_reconcile_every"`
	// CouponSweepEvery is how often the coupon role writes expired coupons
	// as expired (reads show them expired before that). Default 1m.
	CouponSweepEvery Duration `json:"coupon_sweep_every"`
	// CouponSweepBatch is the most coupons one expiry UPDATE touches,
	// 1-coupon.MaxSweepBatch (10000). Default 1000.
	CouponSweepBatch int `json:"coupon_sweep_batch"`
	// TemplateRefreshEvery is how often the coupon role rewrites the Redis
	// template cache from MySQL (one worker at a time); with the 2s local
	// cache it bounds how soon a change reaches every worker. Default 5s.
	TemplateRefreshEvery Duration `json:"template_refresh_every"`

	// Abuse limits (package abuse; config/abuse.go). Rates are requests a
	// second sustained, bursts the most at once, per user or per client
	// IP, cluster-wide.

	// RateLimits is on or off; off turns every rate limit and automatic
	// block off (benchmarks, tests); operators' blocks still apply.
	// Default on.
	RateLimits string `json:"rate_limits"`
	// TrustedProxies are CIDRs (or addresses) of the proxies in front of
	// the API: from a peer among them the client IP is the right-most
	// address of X-Forwarded-For not among them. Default none: the client
	// IP is the TCP peer.
	TrustedProxies []string `json:"trusted_proxies"`
	// LimitClaimUserRate, LimitClaimUserBurst: claims per user. Default 3
	// a second, bursts of 6.
	LimitClaimUserRate  int `json:"limit_claim_user_rate"`
	LimitClaimUserBurst int `json:"limit_claim_user_burst"`
	// LimitClaimIPRate, LimitClaimIPBurst: claims per client IP, which may
	// be a NAT carrying many users. Default 300 a second, bursts of 1000.
	LimitClaimIPRate  int `json:"limit_claim_ip_rate"`
	LimitClaimIPBurst int `json:"limit_claim_ip_burst"`
	// LimitSubscribeUserRate, LimitSubscribeUserBurst: subscription writes
	// (PUT and DELETE) per user. Default 5 a second, bursts of 20.
	LimitSubscribeUserRate  int `json:"limit_subscribe_user_rate"`
	LimitSubscribeUserBurst int `json:"limit_subscribe_user_burst"`
	// LimitSubscribeIPRate, LimitSubscribeIPBurst: subscription writes per
	// client IP. Default 300 a second, bursts of 1000.
	LimitSubscribeIPRate  int `json:"limit_subscribe_ip_rate"`
	LimitSubscribeIPBurst int `json:"limit_subscribe_ip_burst"`
	// AutoBlockTrips: a user or IP refused by a limit more than this many
	// times within AutoBlockWindow is blocked for AutoBlockFor. Defaults
	// 30 times, 1m, 10m.
	AutoBlockTrips  int      `json:"auto_block_trips"`
	AutoBlockWindow Duration `json:"auto_block_window"`
	AutoBlockFor    Duration `json:"auto_block_for"`
	// LimitLease: a worker takes several tokens of a busy subject's limit
	// (an IP behind a NAT) in one Redis call and admits its next requests
	// from them for at most this long; unused ones are lost. It applies to
	// a limit whose rate gives at least 2 tokens a lease, and leaves that
	// many of its burst unused, so a limit only gets stricter (package
	// abuse, lease.go). Default 20ms, 1ms to 1s; 1ms leases nothing for
	// limits under 2,000 a second.
	LimitLease Duration `json:"limit_lease"`

	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `json:"log_level"`
	// LogFormat is text or json. Default text.
	LogFormat string `json:"log_format"`

	// Identity (config/auth.go; CONTRACT.md "Who may call what"). Secrets
	// are never logged; prefer the _file settings, which keep them out of
	// ps and the environment.

	// Auth is on or off. Off serves every route to anyone and is refused
	// unless every listener is on loopback. Default on.
	Auth string `json:"auth"`
	// OperatorToken is one operator token (at least 16 bytes).
	OperatorToken Secret `json:"operator_token"`
	// OperatorTokensFile names a file of operator tokens, one a line (#
	// comments and blank lines skipped); all are valid at once, for
	// rotation.
	OperatorTokensFile string `json:"operator_tokens_file"`
	// JWTHS256Secret is the shared secret of HS256 user tokens (at least
	// 32 bytes).
	JWTHS256Secret Secret `json:"jwt_hs256_secret"`
	// JWTHS256SecretFile names a file holding the HS256 secret.
	JWTHS256SecretFile string `json:"jwt_hs256_secret_file"`
	// JWTPublicKeys names a PEM file of public keys for RS256 (RSA),
	// ES256 (P-256) and EdDSA (Ed25519) user tokens.
	JWTPublicKeys string `json:"jwt_public_keys"`
	// JWTJWKS names a JWK Set file of public keys for user tokens; a
	// token's kid picks its key.
	JWTJWKS string `json:"jwt_jwks"`
	// JWTAudience, if set, must be among a user token's aud.
	JWTAudience string `json:"jwt_audience"`
	// JWTIssuer, if set, must be a user token's iss.
	JWTIssuer string `json:"jwt_issuer"`
	// Request bounds of the api role (see deadline.go).

	// RequestTimeout is every API request's deadline: when an engine
	// hangs, the request answers 503 unavailable by then. Default 5s.
	RequestTimeout Duration `json:"request_timeout"`
	// MaxInFlight caps the API requests served at once (/healthz, /readyz
	// and /metrics are not counted); beyond it a request answers 503
	// unavailable at once. Default 2048.
	MaxInFlight int `json:"max_in_flight"`
	// HTTPReadHeaderTimeout bounds reading a request's headers. Default 5s.
	HTTPReadHeaderTimeout Duration `json:"http_read_header_timeout"`
	// HTTPReadTimeout bounds reading a whole request, body included.
	// Default 10s.
	HTTPReadTimeout Duration `json:"http_read_timeout"`
	// HTTPWriteTimeout bounds a request from the end of its headers to the
	// end of its answer; it must be longer than RequestTimeout, so a
	// request cut short by its deadline still gets its 503. Default 15s.
	HTTPWriteTimeout Duration `json:"http_write_timeout"`
	// HTTPIdleTimeout closes keep-alive connections idle this long.
	// Default 2m.
	HTTPIdleTimeout Duration `json:"http_idle_timeout"`
	// HTTPMaxHeaderBytes bounds the size of a request's headers. Default
	// 65536.
	HTTPMaxHeaderBytes int `json:"http_max_header_bytes"`
	// Engines are the engines' credentials and TLS (config/engines.go).
	Engines
}

// WithDefaults returns w with every zero field set to its default.
func (w Worker) WithDefaults() Worker {
	setDefault(&w.HTTPAddr, "127.0.0.1:8080")
	setDefault(&w.OpsAddr, "127.0.0.1:9090")
	setDefault(&w.RedisPrefix, "couponpush")
	setDefault(&w.Topic, "coupon_push")
	setDefault(&w.ConsulAddr, "127.0.0.1:8500")
	setDefault(&w.ConsulPrefix, "couponpush")
	setDefault(&w.ServiceName, "couponpush-worker")
	if w.WorkerID == "" {
		w.WorkerID = defaultWorkerID()
	}
	setDefault(&w.DefaultQueueCount, 16)
	setDefault(&w.Lead, Duration(60*time.Second))
	setDefault(&w.MergeWindow, Duration(10*time.Second))
	setDefault(&w.Tick, Duration(20*time.Millisecond))
	setDefault(&w.Lease, Duration(time.Second))
	setDefault(&w.LeaseRenew, Duration(250*time.Millisecond))
	setDefault(&w.InFlightDeadline, Duration(10*time.Second))
	setDefault(&w.MarkInterval, Duration(200*time.Millisecond))
	setDefault(&w.DrainTimeout, Duration(15*time.Second))
	setDefault(&w.PopBatch, 1000)
	setDefault(&w.WorkAhead, WorkAheadOn)
	setDefault(&w.PrepareAhead, Duration(10*time.Second))
	setDefault(&w.PriorityAgeing, Duration(queue.DefaultAgeing))
	setDefault(&w.Slots, 4)
	setDefault(&w.MarkBatch, 1000)
	setDefault(&w.CouponReconcileDeadline, Duration(2*time.Minute))
	setDefault(&w.CouponReconcileEvery, Duration(30*time.Second))
	setDefault(&w.CouponSweepEvery, Duration(time.Minute))
	setDefault(&w.CouponSweepBatch, 1000)
	setDefault(&w.TemplateRefreshEvery, Duration(5*time.Second))
	w = w.withAbuseDefaults()
	setDefault(&w.LogLevel, "info")
	setDefault(&w.LogFormat, "text")
	setDefault(&w.Auth, AuthOn)
	w.deadlineDefaults()
	return w
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// defaultWorkerID is <hostname>-<pid>.
func defaultWorkerID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "worker"
	}
	return host + "-" + strconv.Itoa(os.Getpid())
}

// HasRole reports whether the process takes role; no Roles means all.
func (w Worker) HasRole(role string) bool {
	return len(w.Roles) == 0 || slices.Contains(w.Roles, role)
}

var (
	topicRE       = regexp.MustCompile(`^[.a-zA-Z0-9_-]{1,64}$`)
	serviceNameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$`)
)

// Validate reports every problem with w, joined with errors.Join; each
// names the JSON field at fault. It expects defaults already applied: a
// zero duration or count is an error here.
func (w Worker) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}

	seen := map[string]bool{}
	for _, r := range w.Roles {
		switch {
		case !slices.Contains(AllRoles, r):
			bad("roles", "unknown role %q (want %s)", r, strings.Join(AllRoles, ", "))
		case seen[r]:
			bad("roles", "role %q given twice", r)
		}
		seen[r] = true
	}
	if err := checkListenAddr(w.HTTPAddr); err != nil {
		bad("http_addr", "%v", err)
	}
	if err := checkListenAddr(w.OpsAddr); err != nil {
		bad("ops_addr", "%v", err)
	}
	if len(w.RedisAddrs) == 0 {
		bad("redis_addrs", "required (one address for a standalone Redis, several for Cluster seeds)")
	}
	for _, a := range w.RedisAddrs {
		if err := checkDialAddr(a); err != nil {
			bad("redis_addrs", "%v", err)
		}
	}
	checkPrefix(bad, "redis_prefix", w.RedisPrefix)
	if strings.ContainsAny(w.RedisPrefix, "{}") {
		bad("redis_prefix", "%q may not contain { or }: they are Redis Cluster hash tags", w.RedisPrefix)
	}
	if w.MySQLDSN == "" {
		bad("mysql_dsn", "required")
	} else if dsn, err := mysql.ParseDSN(w.MySQLDSN); err != nil {
		bad("mysql_dsn", "%v", err)
	} else if dsn.DBName == "" {
		bad("mysql_dsn", "names no database (want user:pass@tcp(host:port)/dbname)")
	}
	if w.NSQDAddr == "" {
		if w.HasRole(RoleScheduler) {
			bad("nsqd_addr", "required for the scheduler role")
		}
	} else if err := checkDialAddr(w.NSQDAddr); err != nil {
		bad("nsqd_addr", "%v", err)
	}
	switch {
	case strings.HasSuffix(w.Topic, "#ephemeral"):
		bad("topic", "%q is ephemeral: nsqd would drop reminders it cannot deliver", w.Topic)
	case !topicRE.MatchString(w.Topic):
		bad("topic", "%q is not a valid NSQ topic (1-64 characters of [.a-zA-Z0-9_-])", w.Topic)
	}
	if err := checkDialAddr(stripScheme(w.ConsulAddr)); err != nil {
		bad("consul_addr", "%v", err)
	}
	checkPrefix(bad, "consul_prefix", w.ConsulPrefix)
	if strings.HasPrefix(w.ConsulPrefix, "/") || strings.HasSuffix(w.ConsulPrefix, "/") {
		bad("consul_prefix", "%q may not start or end with /", w.ConsulPrefix)
	}
	if !serviceNameRE.MatchString(w.ServiceName) {
		bad("service_name", "%q is not a valid service name (letters, digits and inner dashes)", w.ServiceName)
	}
	if w.WorkerID == "" || strings.ContainsFunc(w.WorkerID, isSpaceOrSlash) {
		bad("worker_id", "%q must be non-empty without spaces or slashes", w.WorkerID)
	}
	checkRange(bad, "default_queue_count", w.DefaultQueueCount, 1, cluster.MaxQueueCount)

	positive := func(field string, d Duration) {
		if d <= 0 {
			bad(field, "must be positive, got %v", d)
		}
	}
	positive("lead", w.Lead)
	if w.MergeWindow < 0 {
		bad("merge_window", "must not be negative, got %v", w.MergeWindow)
	}
	positive("tick", w.Tick)
	positive("lease", w.Lease)
	positive("lease_renew", w.LeaseRenew)
	if w.Lease > 0 && w.LeaseRenew >= w.Lease {
		bad("lease_renew", "must be shorter than lease (%v), got %v", w.Lease, w.LeaseRenew)
	}
	if w.Lease > 0 && w.Tick >= w.Lease {
		bad("tick", "must be shorter than lease (%v), got %v", w.Lease, w.Tick)
	}
	positive("in_flight_deadline", w.InFlightDeadline)
	positive("mark_interval", w.MarkInterval)
	positive("drain_timeout", w.DrainTimeout)
	checkRange(bad, "pop_batch", w.PopBatch, 1, queue.MaxPopUsers)
	if w.WorkAhead != WorkAheadOn && w.WorkAhead != WorkAheadOff {
		bad("work_ahead", "%q is not on or off", w.WorkAhead)
	}
	if w.PrepareAhead < Duration(time.Millisecond) || w.PrepareAhead > Duration(time.Minute) {
		bad("prepare_ahead", "must be between 1ms and 1m, got %v", w.PrepareAhead)
	}
	if w.PriorityAgeing < Duration(time.Millisecond) || w.PriorityAgeing > Duration(time.Hour) {
		bad("priority_ageing", "must be between 1ms and 1h, got %v", w.PriorityAgeing)
	}
	checkRange(bad, "slots", w.Slots, 1, scheduler.MaxSlots)
	checkRange(bad, "mark_batch", w.MarkBatch, 1, subscription.MarkSentBatch)
	positive("coupon_reconcile_deadline", w.CouponReconcileDeadline)
	if w.CouponReconcileDeadline > 0 && w.CouponReconcileDeadline <= Duration(coupon.DefaultWriteBudget) {
		bad("coupon_reconcile_deadline", "must be longer than the claim write budget (%v), got %v", coupon.DefaultWriteBudget, w.CouponReconcileDeadline)
	}
	positive("coupon_reconcile_every", w.CouponReconcileEvery)
	positive("coupon_sweep_every", w.CouponSweepEvery)
	checkRange(bad, "coupon_sweep_batch", w.CouponSweepBatch, 1, coupon.MaxSweepBatch)
	positive("template_refresh_every", w.TemplateRefreshEvery)
	w.validateAbuse(bad)
	if _, err := parseLevel(w.LogLevel); err != nil {
		bad("log_level", "%v", err)
	}
	if w.LogFormat != "text" && w.LogFormat != "json" {
		bad("log_format", "%q is not text or json", w.LogFormat)
	}
	w.validateAuth(bad)
	w.validateDeadlines(bad)
	w.Engines.validate(bad, w.MySQLDSN)
	return errors.Join(errs...)
}

func checkRange(bad func(string, string, ...any), field string, v, lo, hi int) {
	if v < lo || v > hi {
		bad(field, "must be between %d and %d, got %d", lo, hi, v)
	}
}

func checkPrefix(bad func(string, string, ...any), field, p string) {
	if p == "" || strings.ContainsFunc(p, isSpace) {
		bad(field, "%q must be non-empty without spaces", p)
	}
}

func isSpace(r rune) bool        { return unicode.IsSpace(r) }
func isSpaceOrSlash(r rune) bool { return unicode.IsSpace(r) || r == '/' }

// stripScheme drops an http:// or https:// prefix from a Consul address.
func stripScheme(addr string) string {
	for _, s := range []string{"http://", "https://"} {
		if rest, ok := strings.CutPrefix(addr, s); ok {
			return rest
		}
	}
	return addr
}

// checkListenAddr checks a host:port address to listen on; ":port" and
// port 0 are fine.
func checkListenAddr(addr string) error {
	_, _, err := splitHostPort(addr)
	return err
}

// checkDialAddr checks a host:port address to dial: it needs a host and a
// non-zero port.
func checkDialAddr(addr string) error {
	host, port, err := splitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "" || port == 0 {
		return fmt.Errorf("%q needs a host and a non-zero port", addr)
	}
	return nil
}

// splitHostPort splits a host:port address and parses its port.
func splitHostPort(addr string) (string, uint64, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("%q has a bad port %q", addr, port)
	}
	return host, p, nil
}

// parseLevel maps a LogLevel to its slog.Level.
func parseLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%q is not debug, info, warn or error", s)
}

// NewLogger returns a slog.Logger writing to out with w's LogLevel and
// LogFormat; an invalid level means info.
func (w Worker) NewLogger(out io.Writer) *slog.Logger {
	level, err := parseLevel(w.LogLevel)
	if err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if w.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(out, opts))
	}
	return slog.New(slog.NewTextHandler(out, opts))
}

// Values of Worker.WorkAhead.
const (
	WorkAheadOn  = "on"  // prepare work up to PrepareAhead before due (the default)
	WorkAheadOff = "off" // pop and build everything at due
)

// Ahead is how long before due work is prepared: PrepareAhead, or 0 when
// WorkAhead is off.
func (w Worker) Ahead() time.Duration {
	if w.WorkAhead == WorkAheadOff {
		return 0
	}
	return w.PrepareAhead.Duration()
}
