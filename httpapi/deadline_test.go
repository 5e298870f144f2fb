package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"couponpush/subscription"
	"couponpush/template"
)

// hangingServices stand for engines that hang: every call blocks until
// its context ends or release is closed, and counts itself in started.
type hangingServices struct {
	release chan struct{}
	started chan struct{}
}

func newHanging() *hangingServices {
	return &hangingServices{release: make(chan struct{}), started: make(chan struct{}, 64)}
}

func (h *hangingServices) wait(ctx context.Context) error {
	h.started <- struct{}{}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-h.release:
		return nil
	}
}

func (h *hangingServices) Create(ctx context.Context, _ template.Draft) (template.Template, error) {
	return template.Template{}, h.wait(ctx)
}
func (h *hangingServices) Get(ctx context.Context, _ int64) (template.Template, error) {
	if err := h.wait(ctx); err != nil {
		return template.Template{}, err
	}
	return template.Template{}, template.ErrNotFound
}
func (h *hangingServices) Update(ctx context.Context, _ int64, _ template.Patch) (template.Template, error) {
	return template.Template{}, h.wait(ctx)
}
func (h *hangingServices) Subscribe(ctx context.Context, _, _ int64, _ *time.Duration) (subscription.Subscription, bool, error) {
	return subscription.Subscription{}, false, h.wait(ctx)
}
func (h *hangingServices) Cancel(ctx context.Context, _, _ int64) error { return h.wait(ctx) }
func (h *hangingServices) List(ctx context.Context, _ int64, _ subscription.Page) ([]subscription.Subscription, error) {
	return nil, h.wait(ctx)
}

func hangingAPI(t *testing.T, h *hangingServices, edit func(*Config)) *httptest.Server {
	t.Helper()
	cfg := Config{Templates: h, Subscriptions: h, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		AuthOff: true} // as the fixture: the identity tests turn auth on
	edit(&cfg)
	srv := httptest.NewServer(New(cfg))
	t.Cleanup(srv.Close)
	return srv
}

func send(t *testing.T, srv *httptest.Server, method, path string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

// TestRequestDeadline: a request whose engine hangs answers 503
// unavailable with Retry-After once the request deadline has passed, and
// not before.
func TestRequestDeadline(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	h := newHanging()
	srv := hangingAPI(t, h, func(c *Config) { c.RequestTimeout = timeout })
	for _, tc := range []struct{ method, path string }{
		{"GET", "/v1/subscriptions/1"},
		{"DELETE", "/v1/subscriptions/1/2"},
		{"PUT", "/v1/subscriptions/1/2"},
		{"GET", "/v1/templates/3"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			start := time.Now()
			res := send(t, srv, tc.method, tc.path)
			took := time.Since(start)
			if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != "1" {
				t.Fatalf("status %d, Retry-After %q; want 503 with Retry-After 1", res.StatusCode, res.Header.Get("Retry-After"))
			}
			// The deadline is a correctness bound: the answer comes after
			// it (the engine hung) and by it plus a margin for a loaded machine.
			if took < timeout || took > timeout+5*time.Second {
				t.Fatalf("answered after %v; want within [%v, %v]", took, timeout, timeout+5*time.Second)
			}
		})
	}
}

// TestMaxInFlight: beyond MaxInFlight requests in hand the API answers
// 503 at once, probes still answer, and a freed slot serves again.
func TestMaxInFlight(t *testing.T) {
	t.Parallel()
	h := newHanging()
	srv := hangingAPI(t, h, func(c *Config) { c.MaxInFlight = 2; c.RequestTimeout = time.Minute })
	var wg sync.WaitGroup
	held := make(chan int, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", srv.URL+"/v1/subscriptions/1", nil)
			res, err := srv.Client().Do(req)
			if err != nil {
				held <- 0
				return
			}
			res.Body.Close()
			held <- res.StatusCode
		}()
	}
	for range 2 { // both are in their service call
		select {
		case <-h.started:
		case <-time.After(30 * time.Second):
			t.Fatal("the held requests did not reach the service")
		}
	}
	if res := send(t, srv, "GET", "/v1/subscriptions/1"); res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Fatalf("over the cap: status %d Retry-After %q; want 503 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}
	if res := send(t, srv, "GET", "/healthz"); res.StatusCode != http.StatusOK {
		t.Fatalf("probe over the cap: %d; want 200", res.StatusCode)
	}
	close(h.release)
	wg.Wait()
	for range 2 {
		if code := <-held; code != http.StatusOK {
			t.Fatalf("held request answered %d; want 200", code)
		}
	}
	if res := send(t, srv, "GET", "/v1/subscriptions/1"); res.StatusCode != http.StatusOK {
		t.Fatalf("after release: %d; want 200", res.StatusCode)
	}
}
