package worker

import (
	"context"
	"net/http"
)

// newConsole builds the operator console served under /console/ on the
// ops listener (METRICS-SPEC "Ops listener"). It runs once the engines,
// the services and the Consul registration are up, so the console may use
// w.consul, w.rdb, w.db, w.coupons, w.subs, w.idx and w.authenticator.
// nil (for now: the console is built on its own branch) mounts nothing and
// /console/ answers 404.
func (w *Worker) newConsole(context.Context) (http.Handler, error) { return nil, nil }

// consolePart mounts the console built by newConsole on the ops listener
// and unmounts it at stop.
func (w *Worker) consolePart() part {
	return newPart("console", func(ctx context.Context) error {
		h, err := w.newConsole(ctx)
		if err != nil {
			return err
		}
		w.mountConsole(h)
		return nil
	}, func() { w.mountConsole(nil) })
}
