package metrics

import (
	"bytes"
	"math"
	"sync/atomic"
)

// A Gauge is a value that goes up and down. It is safe for concurrent use.
type Gauge struct {
	bits atomic.Uint64 // float64 bits
}

// Set sets the gauge to v.
func (g *Gauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }

// Add adds v, which may be negative.
func (g *Gauge) Add(v float64) { addFloat(&g.bits, v) }

// Sub subtracts v.
func (g *Gauge) Sub(v float64) { addFloat(&g.bits, -v) }

// Inc adds one.
func (g *Gauge) Inc() { addFloat(&g.bits, 1) }

// Dec subtracts one.
func (g *Gauge) Dec() { addFloat(&g.bits, -1) }

// Value returns the current value.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

// A GaugeVec is a gauge split by labels.
type GaugeVec struct{ vec *vec[Gauge] }

// With returns the gauge for the given label values, in the order the label
// names were given; it panics on the wrong number of values.
func (v *GaugeVec) With(values ...string) *Gauge { return v.vec.with(values) }

// gaugeFamily is a registered gauge: plain, labelled or read from a func
// (which may also be exposed as a counter, see CounterFunc).
type gaugeFamily struct {
	name, help string
	single     *Gauge
	vec        *GaugeVec
	fn         func() float64
	counter    bool // fn is a monotonic count: expose TYPE counter
}

func (f *gaugeFamily) meta() (string, string, string) {
	if f.counter {
		return f.name, f.help, "counter"
	}
	return f.name, f.help, "gauge"
}

func (f *gaugeFamily) writeSamples(b *bytes.Buffer) bool {
	switch {
	case f.fn != nil:
		writeSample(b, f.name, sampleLabels{}, f.fn())
		return true
	case f.single != nil:
		writeSample(b, f.name, sampleLabels{}, f.single.Value())
		return true
	}
	all := f.vec.vec.snapshot()
	for _, s := range all {
		writeSample(b, f.name, sampleLabels{names: f.vec.vec.labels, values: s.values}, s.metric.Value())
	}
	return len(all) > 0
}
