package worker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/robfig/cron/v3"

	"couponpush/cluster"
	"couponpush/config"
	"couponpush/coupon"
	"couponpush/metrics"
	"couponpush/template"
)

// newCoupons builds the coupon service every role may use: the API serves
// claims with it, the coupon role runs its jobs. Its claim writer gets a
// small pool of its own that interpolates parameters, so each group-commit
// INSERT is one round trip rather than a prepare, an execute and a close.
func (w *Worker) newCoupons(templates *template.Cache, tiers *template.Redis) (*coupon.Service, error) {
	c, err := mysql.ParseDSN(w.cfg.MySQLDSN)
	if err != nil {
		return nil, fmt.Errorf("mysql dsn: %w", err)
	}
	c.InterpolateParams = true // refused by the driver for unsafe charsets
	w.couponDB, err = openMySQL(c.FormatDSN())
	if err != nil {
		return nil, err
	}
	w.couponDB.SetMaxOpenConns(16)
	w.couponDB.SetMaxIdleConns(16)
	return coupon.NewService(coupon.Config{
		DB: w.db, WriteDB: w.couponDB, Redis: w.rdb, Prefix: w.cfg.RedisPrefix,
		Templates: templates, Stock: tiers, Invalidate: templates.Invalidate,
		ReconcileDeadline: w.cfg.CouponReconcileDeadline.Duration(),
		Logger:            w.log,
	}), nil
}

// startCoupon runs the coupon role's periodic jobs, each under its own
// cluster-wide Consul lock so one worker runs each at a time: the Redis
// template cache refresh (the only writer of that cache), the expiry sweep
// and the stock reconcile.
func (w *Worker) startCoupon(ctx context.Context, consul *cluster.Client, svc *coupon.Service, tiers *template.Redis, reg *metrics.Registry) {
	cfg := w.cfg
	drift := reg.Gauge("couponpush_coupon_stock_drift",
		"Coupons by which Redis stock and MySQL disagreed at the last reconcile (sum of |drift| over sub-stocks, before repair).")
	repaired := reg.Counter("couponpush_coupon_stock_repaired_total", "Coupons of stock drift repaired by reconcile.")
	settled := reg.Counter("couponpush_coupon_claims_settled_total", "Claims left in flight past the deadline and settled from MySQL.")
	missing := reg.Gauge("couponpush_coupon_substocks_missing", "Sub-stocks missing in Redis at the last reconcile.")
	expired := reg.Counter("couponpush_coupons_expired_total", "Coupons the sweep wrote as expired.")
	refreshed := reg.Counter("couponpush_template_cache_refreshed_total", "Templates written to the Redis template cache.")

	w.couponCron = cron.New(cron.WithLocation(time.UTC))
	jobCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.cancelCoupon = cancel
	w.lockedJob(jobCtx, consul, "coupon-template-cache", cfg.TemplateRefreshEvery, func(ctx context.Context) {
		n, err := tiers.Refresh(ctx)
		refreshed.Add(float64(n))
		if err != nil {
			w.log.Warn("template cache refresh", "err", err)
		}
	})
	w.lockedJob(jobCtx, consul, "coupon-expiry", cfg.CouponSweepEvery, func(ctx context.Context) {
		n, err := svc.SweepExpired(ctx, cfg.CouponSweepBatch)
		expired.Add(float64(n))
		if err != nil {
			w.log.Warn("coupon expiry sweep", "err", err)
		}
	})
	w.lockedJob(jobCtx, consul, "coupon-reconcile", cfg.CouponReconcileEvery, func(ctx context.Context) {
		res, err := svc.Reconcile(ctx)
		drift.Set(float64(res.Drift))
		missing.Set(float64(res.Missing))
		repaired.Add(float64(res.Repaired))
		settled.Add(float64(res.Settled))
		level := slog.LevelDebug // a quiet pass is not news
		if res.Drift != 0 || res.Repaired != 0 || res.Settled != 0 || res.Missing != 0 {
			level = slog.LevelInfo
		}
		w.log.Log(ctx, level, "coupon reconcile", "templates", res.Templates, "drift", res.Drift, "repaired", res.Repaired,
			"settled", res.Settled, "missing", res.Missing)
		if err != nil {
			w.log.Warn("coupon reconcile", "err", err)
		}
	})
	w.couponCron.Start()
}

// lockedJob adds a job run every period, each run under the Consul lock
// called name; a run gives up at once when another worker holds the lock,
// and stops when the lock is lost.
func (w *Worker) lockedJob(ctx context.Context, consul *cluster.Client, name string, every config.Duration, run func(context.Context)) {
	w.couponCron.Schedule(cron.Every(every.Duration()), cron.FuncJob(func() {
		lockCtx, stop := context.WithTimeout(ctx, 2*time.Second)
		release, lost, err := consul.Lock(lockCtx, name)
		stop()
		if err != nil {
			return // another worker runs it, or Consul is away: next period
		}
		defer release()
		runCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-lost:
				cancel()
			case <-runCtx.Done():
			}
		}()
		run(runCtx)
	}))
}

// stopCoupon stops the coupon jobs and waits for a running one.
func (w *Worker) stopCoupon() {
	if w.couponCron == nil {
		return
	}
	w.cancelCoupon()
	<-w.couponCron.Stop().Done()
}
