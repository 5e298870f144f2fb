package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"couponpush/auth"
	"couponpush/coupon"
	"couponpush/subscription"
	"couponpush/template"
)

// Templates is the template service the API needs; *template.Cache is one.
type Templates interface {
	Create(ctx context.Context, d template.Draft) (template.Template, error)
	Get(ctx context.Context, id int64) (template.Template, error)
	Update(ctx context.Context, id int64, p template.Patch) (template.Template, error)
}

// Subscriptions is the reminder subscription service the API needs;
// *subscription.Service is one.
type Subscriptions interface {
	Subscribe(ctx context.Context, userID, templateID int64, lead *time.Duration) (subscription.Subscription, bool, error)
	Cancel(ctx context.Context, userID, templateID int64) error
	List(ctx context.Context, userID int64, page subscription.Page) ([]subscription.Subscription, error)
}

// Coupons is the coupon service the API needs; *coupon.Service is one.
// Without it the coupon routes are not served.
type Coupons interface {
	Claim(ctx context.Context, templateID, userID int64, requestID string) (coupon.Coupon, bool, error)
	Lock(ctx context.Context, userID, couponID int64, orderID string) (coupon.Coupon, error)
	Unlock(ctx context.Context, userID, couponID int64, orderID string) (coupon.Coupon, error)
	Redeem(ctx context.Context, userID, couponID int64, orderID string) (coupon.Coupon, error)
	List(ctx context.Context, userID int64, status coupon.Status) ([]coupon.Coupon, error)
	Template(ctx context.Context, id int64) (template.Template, error)
	Prepare(ctx context.Context, t template.Template) (template.Template, error)
	AddStock(ctx context.Context, id, n int64) (template.Template, error)
}

// Defaults.
const (
	DefaultMaxBodyBytes = 64 << 10
	DefaultReadyTimeout = 2 * time.Second
)

// Config configures the API. Templates and Subscriptions are required;
// zero values elsewhere mean defaults.
type Config struct {
	// Templates serves /v1/templates.
	Templates Templates
	// Subscriptions serves /v1/subscriptions.
	Subscriptions Subscriptions
	// Coupons serves claims, coupons, template stock and remaining; nil
	// leaves those routes out (GET /v1/templates/{id} then reads
	// remaining from MySQL).
	Coupons Coupons
	// Guard enforces the abuse limits and blocks on claims and
	// subscription writes and serves /v1/admin/blocks (httpapi/abuse.go);
	// nil limits nothing and leaves those routes out.
	Guard Guard
	// TrustedProxies are the proxies whose X-Forwarded-For names the
	// client IP (see clientIP); none means the TCP peer is the client.
	TrustedProxies []netip.Prefix
	// Ready are the checks of GET /readyz by name ("mysql", "redis", ...);
	// each must return nil when its engine is reachable.
	Ready map[string]func(ctx context.Context) error
	// ReadyTimeout bounds each readiness check; default DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// Metrics serves GET /metrics; nil answers 404.
	Metrics http.Handler
	// Started, if set, is told every request's route pattern (or
	// "unmatched") as it starts being served; Observe is told when it
	// ends, so the two make a gauge of requests in flight.
	Started func(route string)
	// Observe, if set, is told every request's route pattern (or
	// "unmatched"), status and duration, for metrics.
	Observe func(route string, status int, d time.Duration)
	// OnClaim, if set, is told the outcome of every claim the claim
	// handler answered (an authenticated caller), as one of ClaimOutcomes,
	// for metrics.
	OnClaim func(outcome string)
	// Logger receives 5xx causes; nil discards.
	Logger *slog.Logger
	// MaxBodyBytes bounds request bodies; default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Now is the clock for request durations; default time.Now.
	Now func() time.Time

	// Auth tells users from operators (CONTRACT.md "Who may call what");
	// required unless AuthOff.
	Auth *auth.Authenticator
	// AuthOff serves every route to anyone, for local runs and tests on
	// loopback; the worker refuses it on any other address.
	AuthOff bool
	// RequestTimeout is every request's deadline: by then an engine that
	// hangs has made it answer 503 unavailable. Default
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// MaxInFlight caps the requests served at once (probes aside); beyond
	// it the API answers 503 unavailable at once. Default
	// DefaultMaxInFlight.
	MaxInFlight int
}

// WithDefaults returns a copy of c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = DefaultReadyTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports every problem of c (defaults applied first), joined.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("httpapi: config: "+format, args...)) }
	if c.Templates == nil {
		bad("Templates is required")
	}
	if c.Subscriptions == nil {
		bad("Subscriptions is required")
	}
	if c.MaxBodyBytes < 0 {
		bad("MaxBodyBytes must not be negative")
	}
	if c.ReadyTimeout < 0 {
		bad("ReadyTimeout must not be negative")
	}
	if c.Auth == nil && !c.AuthOff {
		bad("Auth is required (or AuthOff, for local runs)")
	}
	if c.Auth != nil && c.AuthOff {
		bad("Auth and AuthOff are both set")
	}
	if c.RequestTimeout < 0 || c.MaxInFlight < 0 {
		bad("RequestTimeout and MaxInFlight must not be negative")
	}
	for name, check := range c.Ready {
		if check == nil {
			bad("readiness check %q is nil", name)
		}
	}
	return errors.Join(errs...)
}

type api struct {
	cfg   Config
	log   *slog.Logger
	mux   *http.ServeMux
	limit *limiter
}

// route is one endpoint and the kind of caller it is for. Later work
// (claims, coupons) adds its own slice.
type route struct {
	pattern string
	caller  caller
	handler func(a *api, w http.ResponseWriter, r *http.Request)
}

func (a *api) routes() []route { return table(a.cfg.Coupons != nil, a.cfg.Guard != nil) }

// Routes lists the pattern ("METHOD /path/{param}") of every route the API
// serves when it has a coupon service and a guard, as cmd/worker's always
// does; docs/openapi.yaml documents exactly these.
func Routes() []string {
	var ps []string
	for _, rt := range table(true, true) {
		ps = append(ps, rt.pattern)
	}
	return ps
}

// table is the route table: the base routes, then the coupon routes with
// a coupon service and the block routes with a guard.
func table(coupons, guard bool) []route {
	rs := []route{
		{"POST /v1/templates", operators, (*api).createTemplate},
		{"GET /v1/templates/{template_id}", users, (*api).getTemplate},
		{"PATCH /v1/templates/{template_id}", operators, (*api).updateTemplate},
		{"PUT /v1/subscriptions/{user_id}/{template_id}", users, (*api).subscribe},
		{"DELETE /v1/subscriptions/{user_id}/{template_id}", users, (*api).cancel},
		{"GET /v1/subscriptions/{user_id}", users, (*api).listSubscriptions},
		{"GET /healthz", anyone, (*api).healthz},
		{"GET /readyz", anyone, (*api).readyz},
		{"GET /metrics", anyone, (*api).metrics},
	}
	if coupons {
		rs = append(rs, couponRoutes()...)
	}
	if guard {
		rs = append(rs, blockRoutes()...)
	}
	return rs
}

// New returns the API's handler, or the problems of cfg (see Validate).
func New(cfg Config) (http.Handler, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &api{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), limit: newLimiter(cfg.RequestTimeout, cfg.MaxInFlight)}
	for _, rt := range a.routes() {
		if err := checkRoute(rt); err != nil {
			return nil, err
		}
		h, kind := rt.handler, rt.caller
		a.mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) {
			if r, ok := a.authenticate(w, r, kind); ok {
				h(a, w, r)
			}
		})
	}
	return a, nil
}

// ServeHTTP routes, turns the mux's own 404 and 405 into JSON errors,
// recovers panics as 500s and reports each request to Observe. Every
// request runs under the request deadline, and beyond MaxInFlight requests
// (probes aside) it answers 503 at once.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := a.cfg.Now()
	sw := &statusWriter{ResponseWriter: w}
	_, pattern := a.mux.Handler(r)
	route := pattern
	if route == "" {
		route = "unmatched"
	}
	if a.cfg.Started != nil {
		a.cfg.Started(route)
	}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			a.log.ErrorContext(r.Context(), "panic serving request",
				"method", r.Method, "route", route, "panic", fmt.Sprint(p))
			if !sw.wrote {
				writeError(sw, http.StatusInternalServerError, "internal", "internal error")
			}
		}
		if a.cfg.Observe != nil {
			a.cfg.Observe(route, sw.status, a.cfg.Now().Sub(start))
		}
	}()
	if pattern != "" {
		release, ok := a.limit.admit(sw, pattern)
		if !ok {
			return
		}
		defer release()
		r, cancel := a.limit.bound(r)
		defer cancel()
		a.mux.ServeHTTP(sw, r)
		return
	}
	// No route: let the mux decide between 404, 405 and a redirect, then
	// answer in JSON.
	cw := &captureWriter{header: http.Header{}}
	a.mux.ServeHTTP(cw, r)
	switch cw.status {
	case http.StatusNotFound:
		writeError(sw, http.StatusNotFound, "not_found", "no such route: "+r.Method+" "+r.URL.Path)
	case http.StatusMethodNotAllowed:
		if allow := cw.header.Get("Allow"); allow != "" {
			sw.Header().Set("Allow", allow)
		}
		writeError(sw, http.StatusMethodNotAllowed, "method_not_allowed",
			"method "+r.Method+" is not allowed on "+r.URL.Path)
	default:
		for k, v := range cw.header {
			sw.Header()[k] = v
		}
		sw.WriteHeader(cw.status)
		_, _ = sw.Write(cw.body)
	}
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// captureWriter holds the mux's plain-text 404/405 so it can be replaced.
type captureWriter struct {
	header http.Header
	status int
	body   []byte
}

func (w *captureWriter) Header() http.Header { return w.header }
func (w *captureWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *captureWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if len(w.body) < 4096 {
		w.body = append(w.body, b...)
	}
	return len(b), nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
