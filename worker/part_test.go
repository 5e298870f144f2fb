package worker

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"couponpush/cluster"
	"couponpush/config"
)

// fakePart records its Start and Stop calls in a shared log.
type fakePart struct {
	name    string
	log     *[]string
	failing bool
}

func (p *fakePart) Name() string { return p.name }

func (p *fakePart) Start(context.Context) error {
	*p.log = append(*p.log, "start "+p.name)
	if p.failing {
		return errors.New("boom")
	}
	return nil
}

func (p *fakePart) Stop() { *p.log = append(*p.log, "stop "+p.name) }

func TestPartsStartInOrderStopInReverse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		failing string // the part whose Start fails, if any
		want    []string
		wantErr string
	}{
		{
			name: "all start",
			want: []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"},
		},
		{
			name:    "failed start stops the failed part and those started before, in reverse",
			failing: "b",
			want:    []string{"start a", "start b", "stop b", "stop a"},
			wantErr: "start b: boom",
		},
		{
			name:    "first part fails",
			failing: "a",
			want:    []string{"start a", "stop a"},
			wantErr: "start a: boom",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			ps := parts{log: slog.New(slog.DiscardHandler)}
			for _, n := range []string{"a", "b", "c"} {
				ps.list = append(ps.list, &fakePart{name: n, log: &got, failing: n == tc.failing})
			}
			err := ps.start(t.Context())
			if tc.wantErr == "" && err != nil {
				t.Fatalf("start: %v", err)
			}
			if tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr) {
				t.Fatalf("start error = %v, want %q", err, tc.wantErr)
			}
			ps.stop()
			ps.stop() // idempotent: nothing stops twice
			if !slices.Equal(got, tc.want) {
				t.Fatalf("calls = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFuncPartStopsOnce(t *testing.T) {
	n := 0
	p := newPart("x", nil, func() { n++ })
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	p.Stop()
	p.Stop()
	if n != 1 {
		t.Fatalf("stop func ran %d times, want 1", n)
	}
	newPart("nil funcs", nil, nil).Stop()
}

// TestPartListOrder pins the shutdown order of a worker with every role
// (partList's comment says why): stopping, which runs the list backwards,
// stops the jobs, drains the scheduler, deregisters from Consul, then
// closes the HTTP listener, and closes the engines last.
func TestPartListOrder(t *testing.T) {
	consul, err := cluster.New(cluster.Config{Addr: "127.0.0.1:1", Prefix: "test"}) // never contacted
	if err != nil {
		t.Fatal(err)
	}
	defer consul.Close()
	w := &Worker{
		log: slog.New(slog.DiscardHandler), m: newMetrics(), consul: consul,
		cfg: config.Worker{Roles: []string{config.RoleAPI, config.RoleScheduler, config.RoleCron, config.RoleCoupon}}.WithDefaults(),
	}
	var stops []string
	list := w.partList()
	for i := len(list) - 1; i >= 0; i-- {
		stops = append(stops, list[i].Name())
	}
	want := []string{
		"template stats", "coupon-reconcile", "coupon-expiry", "coupon-template-cache", "reindex safety net", // stop taking work
		"scheduler", "nsq publisher", // drain what is in hand
		"console", "consul registration", // deregister while the port answers
		"http listener",                                                          // close the listener
		"coupon service", "resize coordinator", "queue count watcher", "engines", // close engines
		"ops listener", // /healthz answers until the end
	}
	if !slices.Equal(stops, want) {
		t.Fatalf("stop order:\n %s\nwant:\n %s", strings.Join(stops, ", "), strings.Join(want, ", "))
	}
	for _, tc := range []struct {
		name  string
		roles []string
		want  []string // stop order
	}{
		{"api", []string{config.RoleAPI}, []string{"console", "consul registration", "http listener", "coupon service", "resize coordinator", "queue count watcher", "engines", "ops listener"}},
		{"scheduler", []string{config.RoleScheduler}, []string{"scheduler", "nsq publisher", "console", "consul registration", "coupon service", "resize coordinator", "queue count watcher", "engines", "ops listener"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &Worker{log: w.log, m: newMetrics(), consul: consul, cfg: config.Worker{Roles: tc.roles}.WithDefaults()}
			list := w.partList()
			var got []string
			for i := len(list) - 1; i >= 0; i-- {
				got = append(got, list[i].Name())
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("stop order %q, want %q", got, tc.want)
			}
		})
	}
}
