package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"couponpush/config"
)

// Readiness bounds.
const (
	// readyTimeout bounds each engine's readiness check.
	readyTimeout = 2 * time.Second
	// engineCheckEvery is how often the engines are checked in the
	// background for couponpush_engine_up.
	engineCheckEvery = 5 * time.Second
)

// check is one engine's readiness check: nil when it is reachable.
type check func(ctx context.Context) error

// readyChecks are the checks of the engines this worker's roles need
// (METRICS-SPEC: api → redis, mysql, consul; scheduler → redis, nsqd,
// consul; coupon → redis, mysql; cron → redis, mysql, consul). Call it
// only once the engines are open.
func (w *Worker) readyChecks() map[string]check {
	need := map[string]bool{"redis": true}
	for _, r := range config.AllRoles {
		if !w.cfg.HasRole(r) {
			continue
		}
		switch r {
		case config.RoleAPI, config.RoleCron:
			need["mysql"], need["consul"] = true, true
		case config.RoleScheduler:
			need["nsqd"], need["consul"] = true, true
		case config.RoleCoupon:
			need["mysql"] = true
		}
	}
	rdb, db := w.rdb, w.db
	all := map[string]check{
		"redis":  func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		"mysql":  db.PingContext,
		"nsqd":   func(ctx context.Context) error { return dialCheck(ctx, w.cfg.NSQDAddr) },
		"consul": w.consul.Ping,
	}
	out := map[string]check{}
	for name := range need {
		out[name] = all[name]
	}
	return out
}

// readyMap is checks as httpapi.Config.Ready takes them.
func readyMap(checks map[string]check) map[string]func(context.Context) error {
	out := make(map[string]func(context.Context) error, len(checks))
	for name, c := range checks {
		out[name] = c
	}
	return out
}

// runChecks runs every check at once, each within readyTimeout, records
// each outcome in couponpush_engine_up and returns them by name.
func (w *Worker) runChecks(ctx context.Context, checks map[string]check) map[string]error {
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		out = map[string]error{}
	)
	for name, c := range checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, readyTimeout)
			defer cancel()
			err := c(cctx)
			w.m.engineChecked(name, err)
			mu.Lock()
			out[name] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// mountConsole is the operator console's mount point on the ops
// listener: h serves every path under /console/ (the console checks the
// operator token itself); nil unmounts it, and /console/ answers 404.
// consolePart mounts it (console.go).
func (w *Worker) mountConsole(h http.Handler) {
	if h == nil {
		w.console.Store(nil)
		return
	}
	w.console.Store(&h)
}

// OpsAddr is the address the ops listener listens on (the port the
// system chose when cfg.OpsAddr asked for port 0); "" before it started.
func (w *Worker) OpsAddr() string { return w.opsAddr }

// opsHandler serves the ops listener: /healthz, /readyz and /metrics to
// anyone (probe callers), and /console/ to the mounted console.
func (w *Worker) opsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		writeOpsJSON(rw, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", w.readyz)
	mux.Handle("GET /metrics", w.m.handler())
	mux.HandleFunc("/console/", func(rw http.ResponseWriter, r *http.Request) {
		if h := w.console.Load(); h != nil {
			(*h).ServeHTTP(rw, r)
			return
		}
		opsError(rw, http.StatusNotFound, "not_found", "the console is not mounted on this worker")
	})
	mux.HandleFunc("/", func(rw http.ResponseWriter, r *http.Request) {
		opsError(rw, http.StatusNotFound, "not_found", "no such route: "+r.Method+" "+r.URL.Path)
	})
	return mux
}

// readyz answers 200 when every engine this worker's roles need answers
// and the worker has started, 503 naming what is not ready otherwise, in
// the API listener's /readyz shape.
func (w *Worker) readyz(rw http.ResponseWriter, r *http.Request) {
	checks := w.checks.Load()
	if checks == nil || !w.started.Load() {
		opsReady(rw, http.StatusServiceUnavailable, map[string]string{}, "not ready: the worker is starting or stopping")
		return
	}
	res := w.runChecks(r.Context(), *checks)
	shown := map[string]string{}
	var failed []string
	for name, err := range res {
		shown[name] = "ok"
		if err != nil {
			shown[name] = "down"
			failed = append(failed, name)
			w.log.WarnContext(r.Context(), "readiness check failed", "check", name, "err", err)
		}
	}
	if len(failed) > 0 {
		slices.Sort(failed)
		opsReady(rw, http.StatusServiceUnavailable, shown, "not ready: "+strings.Join(failed, ", ")+" unreachable")
		return
	}
	opsReady(rw, http.StatusOK, shown, "")
}

func opsReady(rw http.ResponseWriter, status int, checks map[string]string, msg string) {
	body := map[string]any{"checks": checks}
	if msg == "" {
		body["status"] = "ready"
	} else {
		body["error"] = map[string]string{"code": "unavailable", "message": msg}
	}
	writeOpsJSON(rw, status, body)
}

func opsError(rw http.ResponseWriter, status int, code, msg string) {
	writeOpsJSON(rw, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeOpsJSON(rw http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v) // maps of strings: never fails
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	_, _ = rw.Write(append(b, '\n'))
}

// opsPart serves the ops listener on cfg.OpsAddr. It is the first part to
// start and the last to stop, so /healthz answers while the others start
// and until the worker has deregistered and drained. While it runs, the
// engines are checked every engineCheckEvery for couponpush_engine_up.
func (w *Worker) opsPart() part {
	var (
		srv    *http.Server
		served = make(chan error, 1)
		cancel context.CancelFunc
		done   = make(chan struct{})
	)
	return newPart("ops listener", func(ctx context.Context) error {
		ln, err := net.Listen("tcp", w.cfg.OpsAddr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", w.cfg.OpsAddr, err)
		}
		w.opsAddr = ln.Addr().String()
		srv = newHTTPServer(w.cfg, w.opsHandler())
		go func() { served <- srv.Serve(ln) }()
		var cctx context.Context
		cctx, cancel = context.WithCancel(context.WithoutCancel(ctx))
		go func() {
			defer close(done)
			t := time.NewTimer(0)
			defer t.Stop()
			for {
				select {
				case <-cctx.Done():
					return
				case <-t.C:
				}
				c := w.checks.Load()
				if c == nil { // the engines are not open yet
					t.Reset(100 * time.Millisecond)
					continue
				}
				w.runChecks(cctx, *c)
				t.Reset(engineCheckEvery)
			}
		}()
		return nil
	}, func() {
		if cancel != nil {
			cancel()
			<-done
		}
		if srv == nil {
			return
		}
		sctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
		defer stop()
		if err := srv.Shutdown(sctx); err != nil {
			w.stopErrs = append(w.stopErrs, fmt.Errorf("ops shutdown: %w", err))
		}
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			w.stopErrs = append(w.stopErrs, fmt.Errorf("ops: %w", err))
		}
	})
}
