package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"couponpush/client"
	"couponpush/config"
	"couponpush/internal/devtoken"
	"couponpush/internal/enginetest"
	"couponpush/worker"
)

func TestMain(m *testing.M) { enginetest.Main(m) }

// TestRun runs the demo against a real worker with auth on: it subscribes
// its users, each with their own token, and cancels every hundredth from
// the seventh.
func TestRun(t *testing.T) {
	ctx := context.Background()
	prefix := enginetest.Prefix(t)
	tokens, err := devtoken.New()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	wc := config.Worker{
		Roles: []string{config.RoleAPI}, HTTPAddr: addr, RedisAddrs: []string{enginetest.RedisAddr(t)}, RedisPrefix: prefix,
		MySQLDSN: enginetest.MySQL(t), ConsulAddr: enginetest.Consul(t), ConsulPrefix: prefix,
		ServiceName: strings.ToLower(strings.ReplaceAll(prefix, "_", "-")), WorkerID: prefix + "-w1",
		OperatorToken: config.Secret(tokens.Operator), JWTHS256Secret: config.Secret(tokens.Secret),
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
	var out bytes.Buffer
	if err := run(ctx, []string{"http://" + addr}, tokens, 120, 10*time.Second, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "demo: 120 subscribed, 2 cancelled") {
		t.Fatalf("output:\n%s", out.String())
	}
	c, err := client.New(client.Config{BaseURL: "http://" + addr, Token: tokens.Operator})
	if err != nil {
		t.Fatal(err)
	}
	for u, want := range map[int64]string{7: client.SubscriptionCancelled, 8: client.SubscriptionPending, 107: client.SubscriptionCancelled} {
		page, err := c.Subscriptions(ctx, u, client.Page{})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Subscriptions) != 1 || page.Subscriptions[0].Status != want {
			t.Fatalf("user %d: %+v, want one %s", u, page.Subscriptions, want)
		}
	}
}
