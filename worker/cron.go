package worker

import (
	"context"
	"time"

	"github.com/robfig/cron/v3"

	"couponpush/cluster"
	"couponpush/metrics"
	"couponpush/reindex"
)

// startCron runs the periodic jobs of the cron role. Each run takes a
// cluster-wide Consul lock first (giving up at once when another worker
// holds it), so one worker does each job at a time.
func (w *Worker) startCron(ctx context.Context, consul *cluster.Client, job *reindex.Job, reg *metrics.Registry) {
	repaired := reg.Counter("couponpush_reindex_repaired_total",
		"Pending reminders the Redis index lacked and the safety net re-indexed.")
	checked := reg.Counter("couponpush_reindex_checked_total", "Pending reminders the safety net checked.")
	w.cron = cron.New(cron.WithLocation(time.UTC))
	jobCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.cancelCron = cancel
	_, err := w.cron.AddFunc("@every 1m", func() {
		lockCtx, stop := context.WithTimeout(jobCtx, 2*time.Second)
		release, lost, err := consul.Lock(lockCtx, "reindex")
		stop()
		if err != nil {
			return // another worker runs it, or Consul is away: next minute
		}
		defer release()
		runCtx, cancelRun := context.WithCancel(jobCtx)
		defer cancelRun()
		go func() {
			select {
			case <-lost:
				cancelRun()
			case <-runCtx.Done():
			}
		}()
		res, err := job.Run(runCtx)
		checked.Add(float64(res.Checked))
		repaired.Add(float64(res.Repaired))
		if err != nil {
			w.log.Warn("reindex safety net", "err", err)
		}
	})
	if err != nil {
		panic(err) // the spec is a constant
	}
	w.cron.Start()
}

// stopCron stops scheduling and waits for a running job.
func (w *Worker) stopCron() {
	if w.cron == nil {
		return
	}
	w.cancelCron()
	<-w.cron.Stop().Done()
}
