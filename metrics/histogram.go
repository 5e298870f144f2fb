package metrics

import (
	"bytes"
	"fmt"
	"math"
	"sort"
	"sync/atomic"
	"time"
)

// DefBuckets are the default histogram buckets, in seconds: from 5 ms to
// 10 s, fit for request and publish latencies.
var DefBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// ExponentialBuckets returns n buckets starting at start, each factor times
// the one before. It panics unless start > 0, factor > 1 and n ≥ 1.
func ExponentialBuckets(start, factor float64, n int) []float64 {
	if !(start > 0) || !(factor > 1) || n < 1 {
		panic(fmt.Sprintf("metrics: bad exponential buckets (%v, %v, %d)", start, factor, n))
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = start
		start *= factor
	}
	return out
}

// A Histogram counts observations in buckets and keeps their sum. It is
// safe for concurrent use.
type Histogram struct {
	upper  []float64       // bucket upper bounds, without +Inf
	counts []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum    atomic.Uint64   // float64 bits
}

func newHistogram(upper []float64) *Histogram {
	return &Histogram{upper: upper, counts: make([]atomic.Uint64, len(upper)+1)}
}

// Observe records one value.
func (h *Histogram) Observe(v float64) {
	h.counts[sort.SearchFloat64s(h.upper, v)].Add(1)
	addFloat(&h.sum, v)
}

// ObserveDuration records d in seconds.
func (h *Histogram) ObserveDuration(d time.Duration) { h.Observe(d.Seconds()) }

// A HistogramVec is a histogram split by labels.
type HistogramVec struct{ vec *vec[Histogram] }

// With returns the histogram for the given label values, in the order the
// label names were given; it panics on the wrong number of values.
func (v *HistogramVec) With(values ...string) *Histogram { return v.vec.with(values) }

// checkBuckets validates bucket bounds and returns them without a trailing
// +Inf; nil means DefBuckets.
func checkBuckets(name string, buckets []float64) []float64 {
	if buckets == nil {
		buckets = DefBuckets
	}
	out := make([]float64, 0, len(buckets))
	for i, b := range buckets {
		if math.IsInf(b, +1) && i == len(buckets)-1 {
			break
		}
		if math.IsNaN(b) || math.IsInf(b, 0) || (i > 0 && b <= buckets[i-1]) {
			panic(fmt.Sprintf("metrics: histogram %q buckets must be finite and strictly increasing: %v", name, buckets))
		}
		out = append(out, b)
	}
	return out
}

// histogramFamily is a registered histogram, plain or labelled.
type histogramFamily struct {
	name, help string
	upper      []float64
	single     *Histogram
	vec        *HistogramVec
}

func (f *histogramFamily) meta() (string, string, string) { return f.name, f.help, "histogram" }

func (f *histogramFamily) writeSamples(b *bytes.Buffer) bool {
	if f.single != nil {
		f.writeOne(b, nil, nil, f.single)
		return true
	}
	all := f.vec.vec.snapshot()
	for _, s := range all {
		f.writeOne(b, f.vec.vec.labels, s.values, s.metric)
	}
	return len(all) > 0
}

// writeOne writes the _bucket, _sum and _count lines of one series. The
// count is the sum of the buckets, so it always equals the +Inf bucket.
func (f *histogramFamily) writeOne(b *bytes.Buffer, labels, values []string, h *Histogram) {
	var cum uint64
	for i := range h.counts {
		cum += h.counts[i].Load()
		le := math.Inf(+1)
		if i < len(f.upper) {
			le = f.upper[i]
		}
		writeSample(b, f.name+"_bucket", sampleLabels{names: labels, values: values, le: formatFloat(le)}, float64(cum))
	}
	writeSample(b, f.name+"_sum", sampleLabels{names: labels, values: values}, math.Float64frombits(h.sum.Load()))
	writeSample(b, f.name+"_count", sampleLabels{names: labels, values: values}, float64(cum))
}
