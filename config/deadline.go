package config

import "time"

// Limits of the request bounds that Validate enforces.
const (
	// MaxMaxInFlight bounds MaxInFlight.
	MaxMaxInFlight = 1 << 20
	// MinHTTPMaxHeaderBytes and MaxHTTPMaxHeaderBytes bound
	// HTTPMaxHeaderBytes: room for a bearer token, and no more than a
	// megabyte.
	MinHTTPMaxHeaderBytes = 4 << 10
	MaxHTTPMaxHeaderBytes = 1 << 20
)

// deadlineFields are the flags and environment variables of the request
// bounds; init appends them to fields (kept apart so the list merges
// cleanly with other additions).
var deadlineFields = []field{
	{"request-timeout", "REQUEST_TIMEOUT", "deadline of every API request: an engine that hangs makes it answer 503 by then", func(w *Worker) any { return &w.RequestTimeout }},
	{"max-in-flight", "MAX_IN_FLIGHT", "API requests served at once (probes aside); beyond it answer 503 at once", func(w *Worker) any { return &w.MaxInFlight }},
	{"http-read-header-timeout", "HTTP_READ_HEADER_TIMEOUT", "bound on reading a request's headers", func(w *Worker) any { return &w.HTTPReadHeaderTimeout }},
	{"http-read-timeout", "HTTP_READ_TIMEOUT", "bound on reading a whole request", func(w *Worker) any { return &w.HTTPReadTimeout }},
	{"http-write-timeout", "HTTP_WRITE_TIMEOUT", "bound on a request from its headers to its answer (> request-timeout)", func(w *Worker) any { return &w.HTTPWriteTimeout }},
	{"http-idle-timeout", "HTTP_IDLE_TIMEOUT", "close keep-alive connections idle this long", func(w *Worker) any { return &w.HTTPIdleTimeout }},
	{"http-max-header-bytes", "HTTP_MAX_HEADER_BYTES", "largest request headers accepted", func(w *Worker) any { return &w.HTTPMaxHeaderBytes }},
}

func init() { fields = append(fields, deadlineFields...) }

func (w *Worker) deadlineDefaults() {
	setDefault(&w.RequestTimeout, Duration(5*time.Second))
	setDefault(&w.MaxInFlight, 2048)
	setDefault(&w.HTTPReadHeaderTimeout, Duration(5*time.Second))
	setDefault(&w.HTTPReadTimeout, Duration(10*time.Second))
	setDefault(&w.HTTPWriteTimeout, Duration(15*time.Second))
	setDefault(&w.HTTPIdleTimeout, Duration(2*time.Minute))
	setDefault(&w.HTTPMaxHeaderBytes, 64<<10)
}

func (w Worker) validateDeadlines(bad func(string, string, ...any)) {
	for _, d := range []struct {
		field string
		v     Duration
	}{
		{"request_timeout", w.RequestTimeout},
		{"http_read_header_timeout", w.HTTPReadHeaderTimeout},
		{"http_read_timeout", w.HTTPReadTimeout},
		{"http_write_timeout", w.HTTPWriteTimeout},
		{"http_idle_timeout", w.HTTPIdleTimeout},
	} {
		if d.v <= 0 {
			bad(d.field, "must be positive, got %v", d.v)
		}
	}
	if w.RequestTimeout > 0 && w.HTTPWriteTimeout <= w.RequestTimeout {
		bad("http_write_timeout", "must be longer than request_timeout (%v), got %v", w.RequestTimeout, w.HTTPWriteTimeout)
	}
	if w.HTTPReadHeaderTimeout > 0 && w.HTTPReadTimeout > 0 && w.HTTPReadHeaderTimeout > w.HTTPReadTimeout {
		bad("http_read_header_timeout", "must not exceed http_read_timeout (%v), got %v", w.HTTPReadTimeout, w.HTTPReadHeaderTimeout)
	}
	checkRange(bad, "max_in_flight", w.MaxInFlight, 1, MaxMaxInFlight)
	checkRange(bad, "http_max_header_bytes", w.HTTPMaxHeaderBytes, MinHTTPMaxHeaderBytes, MaxHTTPMaxHeaderBytes)
}
