package worker

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestOpsHandler checks the ops listener's routes without engines: the
// console mount point (404 until mounted, the mounted handler for every
// path under /console/, 404 again once unmounted), /healthz, and /readyz
// refusing while the worker has not started or an engine is down.
func TestOpsHandler(t *testing.T) {
	w := &Worker{log: slog.New(slog.DiscardHandler), m: newMetrics()}
	h := w.opsHandler()
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec.Code, rec.Body.String()
	}
	console := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { _, _ = rw.Write([]byte("console " + r.URL.Path)) })

	var checks = map[string]check{"redis": func(context.Context) error { return nil }}
	for _, tc := range []struct {
		name  string
		setup func()
		path  string
		code  int
		body  string // a substring of the answer
	}{
		{"healthz", func() {}, "/healthz", 200, `"ok"`},
		{"console not mounted", func() {}, "/console/", 404, "not mounted"},
		{"console mounted", func() { w.mountConsole(console) }, "/console/workers", 200, "console /console/workers"},
		{"console unmounted", func() { w.mountConsole(nil) }, "/console/workers", 404, "not mounted"},
		{"readyz before the engines", func() {}, "/readyz", 503, "starting or stopping"},
		{"readyz before start ends", func() { w.checks.Store(&checks) }, "/readyz", 503, "starting or stopping"},
		{"readyz started", func() { w.started.Store(true) }, "/readyz", 200, `"redis":"ok"`},
		{"readyz with an engine down", func() {
			checks["mysql"] = func(context.Context) error { return errors.New("down") }
		}, "/readyz", 503, "mysql unreachable"},
		{"metrics", func() {}, "/metrics", 200, "couponpush_build_info"},
		{"unknown route", func() {}, "/v1/templates", 404, "no such route"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			code, body := get(tc.path)
			if code != tc.code || !strings.Contains(body, tc.body) {
				t.Fatalf("GET %s = %d %q, want %d with %q", tc.path, code, body, tc.code, tc.body)
			}
		})
	}
}
