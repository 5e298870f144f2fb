package worker

import (
	"context"
	"strings"

	"couponpush/config"
	"couponpush/console"
	"couponpush/coupon"
	"couponpush/trace"
)

// consolePart builds the operator console (package console) on the
// worker's engines and mounts it under /console/ on the ops listener
// (METRICS-SPEC "Ops listener"). It runs once the engines, the services
// and the Consul registration are up; at stop it unmounts the console and
// ends its sampler.
func (w *Worker) consolePart() part {
	var c *console.Console
	return newPart("console", func(ctx context.Context) error {
		operator, err := w.operatorCheck()
		if err != nil {
			return err
		}
		c, err = console.New(console.Config{
			ServiceName: w.cfg.ServiceName,
			RedisPrefix: w.cfg.RedisPrefix,
			Logger:      w.log,
		}, console.Deps{
			Operator: operator,
			Queues:   w.idx,
			Cluster:  w.consul,
			Store:    console.NewSQLStore(w.db),
			Stock:    remaining{w.coupons},
			Tracer:   tracer{w},
			Count:    w.watcher.Count,
		})
		if err != nil {
			return err
		}
		if err := c.Start(context.WithoutCancel(ctx)); err != nil {
			return err
		}
		w.mountConsole(c)
		return nil
	}, func() {
		w.mountConsole(nil)
		if c != nil {
			c.Stop()
		}
	})
}

// operatorCheck tells operator tokens apart for the console's login, with
// the worker's own authenticator. With auth off (loopback only) any
// non-empty token logs in, as every route is open then.
func (w *Worker) operatorCheck() (func(string) bool, error) {
	if w.cfg.Auth == config.AuthOff {
		return func(token string) bool { return strings.TrimSpace(token) != "" }, nil
	}
	a, err := w.authenticator()
	if err != nil {
		return nil, err
	}
	return func(token string) bool {
		c, err := a.Authenticate("Bearer " + token)
		return err == nil && c.Operator
	}, nil
}

// remaining reads a template's remaining stock through the coupon service.
type remaining struct{ s *coupon.Service }

func (r remaining) Remaining(ctx context.Context, id int64) (int64, error) {
	t, err := r.s.Template(ctx, id)
	if err != nil {
		return 0, err
	}
	return t.Remaining, nil
}

// tracer reads a user's trace on the worker's engines; while no layout is
// recorded it assumes the N the worker follows.
type tracer struct{ w *Worker }

func (t tracer) Trace(ctx context.Context, userID int64) (trace.User, error) {
	return trace.Read(ctx, t.w.db, t.w.idx, func(context.Context) (int, error) { return t.w.watcher.Count(), nil }, userID)
}
