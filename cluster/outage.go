package cluster

import (
	"log/slog"
	"math/rand/v2"
	"time"
)

// outage tracks a run of failed attempts against Consul so that the run is
// logged once when it starts and once when it ends, not per attempt, and
// retries back off exponentially up to a cap.
type outage struct {
	min, max time.Duration // first and largest retry delay
	attempts int           // failures in the current run; 0 means healthy
	since    time.Time     // when the run began
}

// fail records a failure; the first of a run is logged at warn.
func (o *outage) fail(log *slog.Logger, msg string, err error, attrs ...any) {
	if o.attempts == 0 {
		o.since = time.Now()
		log.Warn(msg, append(attrs, slog.Any("err", err))...)
	}
	o.attempts++
}

// ok ends a run of failures, logging how long it lasted.
func (o *outage) ok(log *slog.Logger, msg string, attrs ...any) {
	if o.attempts == 0 {
		return
	}
	log.Info(msg, append(attrs,
		slog.Duration("outage", time.Since(o.since).Round(time.Millisecond)),
		slog.Int("attempts", o.attempts))...)
	o.attempts = 0
}

// down reports whether a run of failures is in progress.
func (o *outage) down() bool { return o.attempts > 0 }

// delay returns how long to wait before the next attempt: min doubled per
// failure up to max, with ±20% jitter so workers do not retry in step.
func (o *outage) delay() time.Duration {
	d := o.min
	for i := 1; i < o.attempts && d < o.max; i++ {
		d *= 2
	}
	d = min(d, o.max)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
