package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

// Defaults of the request bounds.
const (
	// DefaultRequestTimeout is how long one request may take: by then an
	// engine that hangs has made it answer 503 unavailable.
	DefaultRequestTimeout = 5 * time.Second
	// DefaultMaxInFlight is how many requests (probes aside) one API
	// serves at once; more answer 503 unavailable at once.
	DefaultMaxInFlight = 2048
	// RetryAfter is what a 503 unavailable tells the client to wait.
	RetryAfter = time.Second
)

// probes are the routes the in-flight cap does not count: an overloaded
// worker must still answer its health checks and metrics.
var probes = map[string]bool{"GET /healthz": true, "GET /readyz": true, "GET /metrics": true}

// limiter holds the request bounds: a deadline on every request's context
// and a cap on requests in flight.
type limiter struct {
	timeout time.Duration
	slots   chan struct{} // one token per request in flight
}

func newLimiter(timeout time.Duration, maxInFlight int) *limiter {
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	if maxInFlight <= 0 {
		maxInFlight = DefaultMaxInFlight
	}
	return &limiter{timeout: timeout, slots: make(chan struct{}, maxInFlight)}
}

// admit takes a slot for a request of route pattern; it returns false,
// having answered 503, when every slot is taken. Probes always pass. Call
// the returned release when the request is done.
func (l *limiter) admit(w http.ResponseWriter, pattern string) (release func(), ok bool) {
	if probes[pattern] {
		return func() {}, true
	}
	select {
	case l.slots <- struct{}{}:
		return func() { <-l.slots }, true
	default:
		writeUnavailable(w, "too many requests in flight; retry later")
		return nil, false
	}
}

// bound gives r's context the request deadline.
func (l *limiter) bound(r *http.Request) (*http.Request, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(r.Context(), l.timeout)
	return r.WithContext(ctx), cancel
}

// writeUnavailable answers 503 unavailable with Retry-After.
func writeUnavailable(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(RetryAfter/time.Second)))
	writeError(w, http.StatusServiceUnavailable, "unavailable", msg)
}
