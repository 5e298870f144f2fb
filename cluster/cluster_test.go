package cluster

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"couponpush/internal/enginetest"
)

// TestMain runs the tests against the shared Consul dev agent and stops it
// afterwards. Goroutine leaks are checked by leakCheck, which every test
// calls first (through parallel): the last test to finish verifies that no
// goroutine is left, so parallel tests never see each other's goroutines.
// (enginetest.Main owns TestMain's exit, so goleak.VerifyTestMain cannot.)
func TestMain(m *testing.M) { enginetest.Main(m) }

var leakChecked atomic.Int32

// parallel registers t with leakCheck and then marks it parallel; every
// test calls it first, so no test is running unregistered when the count of
// running tests drops to zero.
func parallel(t *testing.T) {
	t.Helper()
	leakCheck(t)
	t.Parallel()
}

// leakCheck registers t as running; when the last registered test ends,
// goleak verifies that no goroutine is left.
func leakCheck(t *testing.T) {
	t.Helper()
	leakChecked.Add(1)
	t.Cleanup(func() {
		if leakChecked.Add(-1) == 0 {
			// The test runner's main goroutine waits for parallel tests
			// in tRunner.func1; that is not a leak.
			goleak.VerifyNone(t, goleak.IgnoreTopFunction("testing.tRunner.func1"))
		}
	})
}

// logs records log messages (and shows them in the test output).
type logs struct {
	mu      sync.Mutex
	records []slog.Record
}

type logHandler struct {
	l     *logs
	attrs []slog.Attr
	next  slog.Handler
}

func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(h.attrs...)
	h.l.mu.Lock()
	h.l.records = append(h.l.records, r)
	h.l.mu.Unlock()
	return h.next.Handle(ctx, r)
}
func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &logHandler{l: h.l, attrs: append(slices.Clone(h.attrs), as...), next: h.next}
}
func (h *logHandler) WithGroup(string) slog.Handler { return h }

// count returns how many records have msg and, if given, the attribute
// key=value.
func (l *logs) count(msg string, key string, value any) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.records {
		if r.Message != msg {
			continue
		}
		match := key == ""
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == key && a.Value.Equal(slog.AnyValue(value)) {
				match = true
			}
			return true
		})
		if match {
			n++
		}
	}
	return n
}

// newClient returns a client on addr (the shared agent if "") with this
// test's own KV prefix, and the log it writes to. It is closed at cleanup.
func newClient(t *testing.T, addr string) (*Client, *logs) {
	t.Helper()
	if addr == "" {
		addr = enginetest.Consul(t)
	}
	l := &logs{}
	logger := slog.New(&logHandler{l: l, next: slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})})
	c, err := New(Config{Addr: addr, Prefix: enginetest.Prefix(t), Logger: logger})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return c, l
}

// testCtx is a context that ends with the test or after 60s.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond every 20ms until it holds or 20s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	enginetest.Eventually(t, what, 20*time.Second, cond)
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// hangupAddr returns the address of a listener that accepts and at once
// closes every connection (Consul down, but attempts can be counted), and
// the count of attempts.
func hangupAddr(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	attempts := new(atomic.Int32)
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			attempts.Add(1)
			conn.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-accepting })
	return l.Addr().String(), attempts
}
