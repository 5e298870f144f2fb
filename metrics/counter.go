package metrics

import (
	"bytes"
	"fmt"
	"math"
	"sync/atomic"
)

// A Counter is a value that only goes up. It is safe for concurrent use.
type Counter struct {
	whole atomic.Uint64 // the sum of whole-number increments
	frac  atomic.Uint64 // float64 bits of the sum of other increments
}

// Inc adds one.
func (c *Counter) Inc() { c.whole.Add(1) }

// Add adds v, which must not be negative (or NaN); Add panics otherwise,
// since a counter that goes down is a bug.
func (c *Counter) Add(v float64) {
	if !(v >= 0) {
		panic(fmt.Sprintf("metrics: counter cannot add %v", v))
	}
	if v < 1<<63 {
		if u := uint64(v); float64(u) == v {
			c.whole.Add(u)
			return
		}
	}
	addFloat(&c.frac, v)
}

// Value returns the current count.
func (c *Counter) Value() float64 {
	return float64(c.whole.Load()) + math.Float64frombits(c.frac.Load())
}

// A CounterVec is a counter split by labels.
type CounterVec struct{ vec *vec[Counter] }

// With returns the counter for the given label values, in the order the
// label names were given; it panics on the wrong number of values. Keep the
// result on hot paths to skip the lookup.
func (v *CounterVec) With(values ...string) *Counter { return v.vec.with(values) }

// counterFamily is a registered counter, plain or labelled.
type counterFamily struct {
	name, help string
	single     *Counter
	vec        *CounterVec
}

func (f *counterFamily) meta() (string, string, string) { return f.name, f.help, "counter" }

func (f *counterFamily) writeSamples(b *bytes.Buffer) bool {
	if f.single != nil {
		writeSample(b, f.name, sampleLabels{}, f.single.Value())
		return true
	}
	all := f.vec.vec.snapshot()
	for _, s := range all {
		writeSample(b, f.name, sampleLabels{names: f.vec.vec.labels, values: s.values}, s.metric.Value())
	}
	return len(all) > 0
}

// addFloat adds v to the float64 stored as bits in u.
func addFloat(u *atomic.Uint64, v float64) {
	for {
		old := u.Load()
		if u.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}
