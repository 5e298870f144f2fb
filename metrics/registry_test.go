package metrics

import (
	"bytes"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestWriteToExact(t *testing.T) {
	r := NewRegistry()
	pushes := r.CounterVec("couponpush_pushes_total", "Pushes published.", "queue", "result")
	pushes.With("3", "ok").Add(5)
	pushes.With("10", "ok").Inc()
	pushes.With("3", "error").Inc()
	up := r.Counter("couponpush_up_total", "Starts.\nSecond line with \\ backslash.")
	up.Inc()
	up.Add(0.5)
	depth := r.Gauge("couponpush_depth", "Queue depth.")
	depth.Set(7)
	depth.Dec()
	r.GaugeFunc("couponpush_queues", "Queue count N.", func() float64 { return 16 })
	r.CounterFunc("couponpush_marked_total", "Kept elsewhere.", func() float64 { return 42 })
	lat := r.HistogramVec("couponpush_lateness_seconds", "Lateness.", []float64{0.1, 1}, "role")
	lat.With("sched").Observe(0.05)
	lat.With("sched").Observe(0.1)
	lat.With("sched").Observe(3)
	r.GaugeVec("couponpush_unused", "Never set, so left out.", "x")
	r.Histogram("couponpush_empty_seconds", "No observations.", []float64{1, math.Inf(+1)})
	odd := r.GaugeVec("couponpush_odd", "Escaping.", "v")
	odd.With("a\"b\\c\nd").Set(-1.25)

	var b bytes.Buffer
	if _, err := r.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	want := `# HELP couponpush_depth Queue depth.
# TYPE couponpush_depth gauge
couponpush_depth 6
# HELP couponpush_empty_seconds No observations.
# TYPE couponpush_empty_seconds histogram
couponpush_empty_seconds_bucket{le="1"} 0
couponpush_empty_seconds_bucket{le="+Inf"} 0
couponpush_empty_seconds_sum 0
couponpush_empty_seconds_count 0
# HELP couponpush_lateness_seconds Lateness.
# TYPE couponpush_lateness_seconds histogram
couponpush_lateness_seconds_bucket{role="sched",le="0.1"} 2
couponpush_lateness_seconds_bucket{role="sched",le="1"} 2
couponpush_lateness_seconds_bucket{role="sched",le="+Inf"} 3
couponpush_lateness_seconds_sum{role="sched"} 3.15
couponpush_lateness_seconds_count{role="sched"} 3
# HELP couponpush_marked_total Kept elsewhere.
# TYPE couponpush_marked_total counter
couponpush_marked_total 42
# HELP couponpush_odd Escaping.
# TYPE couponpush_odd gauge
couponpush_odd{v="a\"b\\c\nd"} -1.25
# HELP couponpush_pushes_total Pushes published.
# TYPE couponpush_pushes_total counter
couponpush_pushes_total{queue="10",result="ok"} 1
couponpush_pushes_total{queue="3",result="error"} 1
couponpush_pushes_total{queue="3",result="ok"} 5
# HELP couponpush_queues Queue count N.
# TYPE couponpush_queues gauge
couponpush_queues 16
# HELP couponpush_up_total Starts.\nSecond line with \\ backslash.
# TYPE couponpush_up_total counter
couponpush_up_total 1.5
`
	if got := b.String(); got != want {
		t.Errorf("exposition mismatch\n got:\n%s\nwant:\n%s", got, want)
	}
}

func TestEmptyHelp(t *testing.T) {
	r := NewRegistry()
	r.Gauge("g", "").Set(1)
	var b bytes.Buffer
	if _, err := r.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	if want := "# TYPE g gauge\ng 1\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func TestHandler(t *testing.T) {
	r := NewRegistry()
	r.Counter("a_total", "A.").Inc()
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != ContentType {
		t.Errorf("Content-Type = %q, want %q", ct, ContentType)
	}
	if want := "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n"; string(body) != want {
		t.Errorf("body = %q, want %q", body, want)
	}
}

func TestConcurrentUpdates(t *testing.T) {
	r := NewRegistry()
	c := r.CounterVec("c_total", "C.", "k")
	g := r.Gauge("g", "G.")
	h := r.Histogram("h_seconds", "H.", []float64{1})
	f := r.Counter("f_total", "F.")

	const workers, each = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			key := []string{"even", "odd"}[w%2]
			for range each {
				c.With(key).Inc()
				g.Inc()
				g.Sub(0.5)
				h.Observe(0.5)
				f.Add(0.25)
			}
		})
		wg.Go(func() { // scrape while updating
			for range 20 {
				if _, err := r.WriteTo(io.Discard); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()

	if got := c.With("even").Value() + c.With("odd").Value(); got != workers*each {
		t.Errorf("counter = %v, want %v", got, workers*each)
	}
	if got := g.Value(); got != workers*each*0.5 {
		t.Errorf("gauge = %v, want %v", got, workers*each*0.5)
	}
	if got := f.Value(); got != workers*each*0.25 {
		t.Errorf("float counter = %v, want %v", got, workers*each*0.25)
	}
	var b bytes.Buffer
	if _, err := r.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{`h_seconds_bucket{le="1"} 16000`, "h_seconds_count 16000", "h_seconds_sum 8000"} {
		if !strings.Contains(b.String(), line+"\n") {
			t.Errorf("output lacks %q:\n%s", line, b.String())
		}
	}
}

func TestMisusePanics(t *testing.T) {
	tests := []struct {
		name string
		fn   func(r *Registry)
	}{
		{"duplicate name", func(r *Registry) { r.Counter("x", ""); r.Gauge("x", "") }},
		{"bad metric name", func(r *Registry) { r.Counter("1x", "") }},
		{"bad label name", func(r *Registry) { r.CounterVec("x", "", "a-b") }},
		{"reserved label name", func(r *Registry) { r.GaugeVec("x", "", "__x") }},
		{"duplicate label", func(r *Registry) { r.GaugeVec("x", "", "a", "a") }},
		{"le on histogram", func(r *Registry) { r.HistogramVec("x", "", nil, "le") }},
		{"unsorted buckets", func(r *Registry) { r.Histogram("x", "", []float64{1, 1}) }},
		{"NaN bucket", func(r *Registry) { r.Histogram("x", "", []float64{math.NaN()}) }},
		{"wrong value count", func(r *Registry) { r.CounterVec("x", "", "a").With("1", "2") }},
		{"negative counter add", func(r *Registry) { r.Counter("x", "").Add(-1) }},
		{"nil gauge func", func(r *Registry) { r.GaugeFunc("x", "", nil) }},
		{"nil counter func", func(r *Registry) { r.CounterFunc("x", "", nil) }},
		{"bad exponential buckets", func(*Registry) { ExponentialBuckets(1, 1, 3) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tt.fn(NewRegistry())
		})
	}
}

func TestExponentialBuckets(t *testing.T) {
	got := ExponentialBuckets(0.001, 10, 4)
	want := []float64{0.001, 0.01, 0.1, 1}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Fatalf("ExponentialBuckets = %v, want %v", got, want)
		}
	}
}

func BenchmarkCounterVecWith(b *testing.B) {
	c := NewRegistry().CounterVec("c_total", "C.", "queue")
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.With("7").Inc()
		}
	})
}
