package metrics

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
)

// ContentType is the media type of the text exposition format written by
// Registry.WriteTo and Registry.Handler.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

var (
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// A Registry holds metrics and writes them in the Prometheus text format.
// The zero value is not usable; call NewRegistry. A Registry is safe for
// concurrent use.
type Registry struct {
	mu       sync.Mutex
	families map[string]family
}

// family is one named metric: its HELP and TYPE lines and the samples under
// them.
type family interface {
	// meta returns the metric name, help text and Prometheus type.
	meta() (name, help, typ string)
	// writeSamples appends the sample lines; it reports false when the
	// family has no series yet and must be left out of the output.
	writeSamples(b *bytes.Buffer) bool
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{families: make(map[string]family)}
}

// register adds f under name; it panics on an invalid or duplicate name.
func (r *Registry) register(name string, f family) {
	if !metricNameRE.MatchString(name) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", name))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.families[name]; dup {
		panic(fmt.Sprintf("metrics: metric %q registered twice", name))
	}
	r.families[name] = f
}

// Counter registers and returns a counter without labels.
func (r *Registry) Counter(name, help string) *Counter {
	c := &Counter{}
	r.register(name, &counterFamily{name: name, help: help, single: c})
	return c
}

// CounterVec registers and returns a counter split by the given label names.
func (r *Registry) CounterVec(name, help string, labels ...string) *CounterVec {
	v := &CounterVec{vec: newVec(labels, plainVec, func() *Counter { return &Counter{} })}
	r.register(name, &counterFamily{name: name, help: help, vec: v})
	return v
}

// Gauge registers and returns a gauge without labels.
func (r *Registry) Gauge(name, help string) *Gauge {
	g := &Gauge{}
	r.register(name, &gaugeFamily{name: name, help: help, single: g})
	return g
}

// GaugeVec registers and returns a gauge split by the given label names.
func (r *Registry) GaugeVec(name, help string, labels ...string) *GaugeVec {
	v := &GaugeVec{vec: newVec(labels, plainVec, func() *Gauge { return &Gauge{} })}
	r.register(name, &gaugeFamily{name: name, help: help, vec: v})
	return v
}

// GaugeFunc registers a gauge whose value is read by calling fn at scrape
// time. fn must be safe for concurrent use and should return quickly; it is
// called without any registry lock held.
func (r *Registry) GaugeFunc(name, help string, fn func() float64) {
	if fn == nil {
		panic(fmt.Sprintf("metrics: nil func for gauge %q", name))
	}
	r.register(name, &gaugeFamily{name: name, help: help, fn: fn})
}

// CounterFunc registers a counter whose value is read by calling fn at
// scrape time, for counts another package already keeps (atomics). fn must
// never decrease, be safe for concurrent use and return quickly.
func (r *Registry) CounterFunc(name, help string, fn func() float64) {
	if fn == nil {
		panic(fmt.Sprintf("metrics: nil func for counter %q", name))
	}
	r.register(name, &gaugeFamily{name: name, help: help, fn: fn, counter: true})
}

// Histogram registers and returns a histogram without labels. buckets are
// the upper bounds, strictly increasing; nil means DefBuckets. The +Inf
// bucket is always added.
func (r *Registry) Histogram(name, help string, buckets []float64) *Histogram {
	upper := checkBuckets(name, buckets)
	h := newHistogram(upper)
	r.register(name, &histogramFamily{name: name, help: help, upper: upper, single: h})
	return h
}

// HistogramVec registers and returns a histogram split by the given label
// names; buckets are as for Histogram. The label name "le" is reserved.
func (r *Registry) HistogramVec(name, help string, buckets []float64, labels ...string) *HistogramVec {
	upper := checkBuckets(name, buckets)
	v := &HistogramVec{vec: newVec(labels, histogramVec, func() *Histogram { return newHistogram(upper) })}
	r.register(name, &histogramFamily{name: name, help: help, upper: upper, vec: v})
	return v
}

// WriteTo writes every metric in the text exposition format 0.0.4, families
// sorted by name and series by label values. A metric registered with an
// empty help text gets no HELP line.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	fams := make([]family, 0, len(r.families))
	for _, f := range r.families {
		fams = append(fams, f)
	}
	r.mu.Unlock()
	sort.Slice(fams, func(i, j int) bool {
		a, _, _ := fams[i].meta()
		b, _, _ := fams[j].meta()
		return a < b
	})

	var out, samples bytes.Buffer
	for _, f := range fams {
		samples.Reset()
		if !f.writeSamples(&samples) {
			continue
		}
		name, help, typ := f.meta()
		if help != "" {
			fmt.Fprintf(&out, "# HELP %s %s\n", name, escapeHelp(help))
		}
		fmt.Fprintf(&out, "# TYPE %s %s\n", name, typ)
		out.Write(samples.Bytes())
	}
	return out.WriteTo(w)
}

// Handler returns an http.Handler that serves the registry for Prometheus.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var b bytes.Buffer
		if _, err := r.WriteTo(&b); err != nil {
			http.Error(w, "metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", ContentType)
		_, _ = b.WriteTo(w)
	})
}

// vec maps label values to one child metric each.
type vec[T any] struct {
	labels   []string
	newChild func() *T

	mu       sync.RWMutex
	children map[string]*series[T]
}

// series is one child of a vec with the label values that name it.
type series[T any] struct {
	values []string
	metric *T
}

// vecKind says whether a vec's family is a histogram, which reserves the
// label name "le".
type vecKind int

// The kinds of vec.
const (
	plainVec vecKind = iota
	histogramVec
)

// newVec checks the label names and returns an empty vec.
func newVec[T any](labels []string, kind vecKind, newChild func() *T) *vec[T] {
	seen := make(map[string]bool, len(labels))
	for _, l := range labels {
		switch {
		case !labelNameRE.MatchString(l) || strings.HasPrefix(l, "__"):
			panic(fmt.Sprintf("metrics: invalid label name %q", l))
		case kind == histogramVec && l == "le":
			panic(`metrics: label name "le" is reserved for histogram buckets`)
		case seen[l]:
			panic(fmt.Sprintf("metrics: label name %q given twice", l))
		}
		seen[l] = true
	}
	return &vec[T]{
		labels:   slices.Clone(labels),
		newChild: newChild,
		children: make(map[string]*series[T]),
	}
}

// with returns the child for values, creating it on first use.
func (v *vec[T]) with(values []string) *T {
	if len(values) != len(v.labels) {
		panic(fmt.Sprintf("metrics: %d label values for labels %q", len(values), v.labels))
	}
	key := strings.Join(values, "\xff")
	v.mu.RLock()
	s, ok := v.children[key]
	v.mu.RUnlock()
	if ok {
		return s.metric
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if s, ok := v.children[key]; ok {
		return s.metric
	}
	s = &series[T]{values: slices.Clone(values), metric: v.newChild()}
	v.children[key] = s
	return s.metric
}

// snapshot returns the children sorted by label values.
func (v *vec[T]) snapshot() []*series[T] {
	v.mu.RLock()
	out := make([]*series[T], 0, len(v.children))
	for _, s := range v.children {
		out = append(out, s)
	}
	v.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return slices.Compare(out[i].values, out[j].values) < 0 })
	return out
}
