package worker

import (
	"context"
	"time"

	"couponpush/internal/finish"
	"couponpush/reindex"
)

// reindexPart runs the cron role's job, the reindex safety net, every
// minute under its cluster-wide Consul lock, so one worker runs it at a
// time.
func (w *Worker) reindexPart() part {
	var rx *reindex.Job
	job := w.consul.NewLockedJob("reindex", time.Minute, func(ctx context.Context) {
		res, err := rx.Run(ctx)
		w.m.reindexChecked.Add(float64(res.Checked))
		w.m.reindexRepaired.Add(float64(res.Repaired))
		w.m.reindexRevived.Add(float64(res.Revived))
		w.m.reindexReclassed.Add(float64(res.Reclassed))
		if err != nil {
			w.log.Warn("reindex safety net", "err", err)
		}
	}, w.log)
	return newPart("reindex safety net", func(ctx context.Context) error {
		var err error
		rx, err = reindex.New(w.db, w.router, reindex.Config{
			Margin: w.cfg.MergeWindow.Duration() + 20*time.Second,
			// A DELETE in hand ends within its deadline and completing writes.
			Grace:  max(time.Minute, 2*(w.cfg.RequestTimeout.Duration()+finish.DefaultTimeout)),
			Logger: w.log,
		})
		if err != nil {
			return err
		}
		return job.Start(ctx)
	}, job.Stop)
}
