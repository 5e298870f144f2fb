package worker_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"couponpush/client"
	"couponpush/config"
	"couponpush/internal/enginetest"
	"couponpush/worker"
)

// TestCouponRole runs two in-process workers, one with the coupon role, and
// shows its jobs at work: the Redis template cache written under the lock,
// a template change reaching the other worker, drift repaired and exposed
// as a metric, and an expired coupon swept.
func TestCouponRole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prefix := enginetest.Prefix(t)
	dsn := enginetest.MySQL(t)
	rdb := redis.NewClient(&redis.Options{Addr: enginetest.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	start := func(id string, roles ...string) string {
		addr := enginetest.FreeAddr(t)
		wc := config.Worker{
			Roles: roles, HTTPAddr: addr, OpsAddr: "127.0.0.1:0", RedisAddrs: []string{enginetest.RedisAddr(t)}, RedisPrefix: prefix,
			MySQLDSN: dsn, ConsulAddr: enginetest.Consul(t), ConsulPrefix: prefix,
			ServiceName: strings.ToLower(strings.ReplaceAll(prefix, "_", "-")), WorkerID: prefix + "-" + id,
			TemplateRefreshEvery: config.Duration(100 * time.Millisecond), CouponReconcileEvery: config.Duration(200 * time.Millisecond),
			CouponSweepEvery: config.Duration(200 * time.Millisecond), Auth: config.AuthOff,
		}.WithDefaults()
		if err := wc.Validate(); err != nil {
			t.Fatal(err)
		}
		w, err := worker.Start(ctx, wc, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := w.Stop(); err != nil {
				t.Error(err)
			}
		})
		return "http://" + addr
	}
	jobs := start("w1", config.RoleAPI, config.RoleCoupon)
	api := start("w2", config.RoleAPI)
	newClient := func(base string) *client.Client {
		c, err := client.New(client.Config{BaseURL: base})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	jobsAPI, apiAPI := newClient(jobs), newClient(api)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	now := time.Now().UTC()
	validUntil := now.Add(3 * time.Second)
	tpl, err := apiAPI.CreateTemplate(ctx, client.TemplateDraft{Name: "role", Type: client.TypeFixed, Value: 100, Stock: 10, SubStocks: 4,
		GrabStart: now.Add(-time.Minute), GrabEnd: now.Add(time.Hour), ValidUntil: &validUntil})
	must(err)
	for u := int64(1); u <= 3; u++ {
		if _, created, err := apiAPI.Claim(ctx, tpl.ID, client.ClaimRequest{UserID: u, RequestID: fmt.Sprint("r", u)}); err != nil || !created {
			t.Fatalf("claim of user %d: created %v, %v", u, created, err)
		}
	}

	key := fmt.Sprintf("%s:tpl:%d", prefix, tpl.ID)
	enginetest.Eventually(t, "the template in the Redis cache", 10*time.Second, func() bool {
		return rdb.Exists(ctx, key).Val() == 1
	})

	renamed := "renamed"
	_, err = jobsAPI.UpdateTemplate(ctx, tpl.ID, client.TemplatePatch{Name: &renamed})
	must(err)
	enginetest.Eventually(t, "the rename seen by the other worker", 10*time.Second, func() bool {
		tpl, err = apiAPI.Template(ctx, tpl.ID)
		must(err)
		return tpl.Name == "renamed"
	})

	// Two coupons appear in a sub-stock from nowhere: reconcile takes them
	// back and says so on /metrics.
	rdb.HIncrBy(ctx, fmt.Sprintf("%s:{%s:t%d:s0}", prefix, prefix, tpl.ID), "left", 2)
	enginetest.Eventually(t, "drift repaired", 10*time.Second, func() bool {
		tpl, err = apiAPI.Template(ctx, tpl.ID)
		must(err)
		return tpl.Remaining == 7 && strings.Contains(metricsOf(t, jobs), "couponpush_coupon_stock_repaired_total 2\n")
	})
	if m := metricsOf(t, jobs); !strings.Contains(m, "couponpush_coupon_stock_drift ") {
		t.Fatalf("no drift gauge in /metrics")
	}

	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	enginetest.Eventually(t, "the coupons swept as expired", 15*time.Second, func() bool {
		var n int
		_ = db.QueryRow("SELECT COUNT(*) FROM coupons WHERE template_id = ? AND status = 'expired'", tpl.ID).Scan(&n)
		return n == 3
	})
}

func metricsOf(t *testing.T, base string) string {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}
