package worker

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/go-sql-driver/mysql"

	"couponpush/cluster"
	"couponpush/coupon"
	"couponpush/subscription"
	"couponpush/template"
)

// newCoupons builds the template tiers and the coupon and subscription
// services every role may use: the API serves them, the scheduler reads
// grab starts and marks reminders sent, the coupon role runs its jobs. The
// claim writer gets a small pool of its own that interpolates parameters,
// so each group-commit INSERT is one round trip rather than a prepare, an
// execute and a close.
func (w *Worker) newCoupons(context.Context) error {
	c, err := mysql.ParseDSN(w.dsn)
	if err != nil {
		return fmt.Errorf("mysql dsn: %w", err)
	}
	c.InterpolateParams = true // refused by the driver for unsafe charsets
	w.couponDB, err = openMySQL(c.FormatDSN())
	if err != nil {
		return err
	}
	w.couponDB.SetMaxOpenConns(16)
	w.couponDB.SetMaxIdleConns(16)

	store, err := template.NewStore(w.db, template.StoreConfig{})
	if err != nil {
		return err
	}
	w.tiers = template.NewRedis(w.rdb, w.cfg.RedisPrefix, store)
	if w.templates, err = template.NewCache(w.tiers, template.CacheConfig{}); err != nil {
		return err
	}
	if w.coupons, err = coupon.NewService(coupon.Config{
		DB: w.db, WriteDB: w.couponDB, Redis: w.rdb, Prefix: w.cfg.RedisPrefix,
		Templates: w.templates, Stock: w.tiers, Invalidate: w.templates.Invalidate,
		ReconcileDeadline: w.cfg.CouponReconcileDeadline.Duration(),
		Logger:            w.log,
	}); err != nil {
		return err
	}
	w.subs, err = subscription.NewService(w.db, w.templates, w.router,
		subscription.Config{DefaultLead: w.cfg.Lead.Duration(), Logger: w.log})
	return err
}

// stopCoupons commits the claims in hand and closes the claim writer's
// pool.
func (w *Worker) stopCoupons() {
	if w.coupons != nil {
		w.coupons.Stop()
	}
	if w.couponDB != nil {
		w.couponDB.Close()
	}
}

// couponJobs are the coupon role's periodic jobs, each under its own
// cluster-wide Consul lock so one worker runs each at a time: the Redis
// template cache refresh (the only writer of that cache), the expiry sweep
// and the stock reconcile.
func (w *Worker) couponJobs() []part {
	cfg, m := w.cfg, w.m
	return []part{
		w.consul.NewLockedJob("coupon-template-cache", cfg.TemplateRefreshEvery.Duration(), func(ctx context.Context) {
			n, err := w.tiers.Refresh(ctx)
			m.templatesRefreshed.Add(float64(n))
			if err != nil {
				w.log.Warn("template cache refresh", "err", err)
			}
		}, w.log),
		w.consul.NewLockedJob("coupon-expiry", cfg.CouponSweepEvery.Duration(), func(ctx context.Context) {
			n, err := w.coupons.SweepExpired(ctx, cfg.CouponSweepBatch)
			m.couponsExpired.Add(float64(n))
			if err != nil {
				w.log.Warn("coupon expiry sweep", "err", err)
			}
		}, w.log),
		w.consul.NewLockedJob("coupon-reconcile", cfg.CouponReconcileEvery.Duration(), func(ctx context.Context) {
			res, err := w.coupons.Reconcile(ctx)
			m.stockDrift.Set(float64(res.Drift))
			m.substocksMissing.Set(float64(res.Missing))
			m.stockRepaired.Add(float64(res.Repaired))
			m.claimsSettled.Add(float64(res.Settled))
			level := slog.LevelDebug // a quiet pass is not news
			if res.Drift != 0 || res.Repaired != 0 || res.Settled != 0 || res.Missing != 0 {
				level = slog.LevelInfo
			}
			w.log.Log(ctx, level, "coupon reconcile", "templates", res.Templates, "drift", res.Drift, "repaired", res.Repaired,
				"settled", res.Settled, "missing", res.Missing)
			if err != nil {
				w.log.Warn("coupon reconcile", "err", err)
			}
		}, w.log),
	}
}

var _ part = (*cluster.LockedJob)(nil)
