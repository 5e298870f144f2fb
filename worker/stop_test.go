package worker_test

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"couponpush/cluster"
	"couponpush/config"
	"couponpush/internal/enginetest"
	"couponpush/worker"
)

// TestStopDeregistersBeforeClosingPort stops an API worker while polling
// its port: when the port first refuses a connection, Consul must already
// have forgotten the worker, so no one is sent to a closed port by a
// passing check.
func TestStopDeregistersBeforeClosingPort(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prefix := enginetest.Prefix(t)
	service := strings.ToLower(strings.ReplaceAll(prefix, "_", "-"))
	addr := enginetest.FreeAddr(t)
	wc := config.Worker{
		Roles: []string{config.RoleAPI}, HTTPAddr: addr, OpsAddr: "127.0.0.1:0", RedisAddrs: []string{enginetest.RedisAddr(t)}, RedisPrefix: prefix,
		MySQLDSN: enginetest.MySQL(t), ConsulAddr: enginetest.Consul(t), ConsulPrefix: prefix,
		ServiceName: service, WorkerID: prefix + "-w1", Auth: config.AuthOff,
	}.WithDefaults()
	if err := wc.Validate(); err != nil {
		t.Fatal(err)
	}
	w, err := worker.Start(ctx, wc, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	consul, err := cluster.New(cluster.Config{Addr: wc.ConsulAddr, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer consul.Close()
	status := func() string {
		ws, err := consul.Workers(ctx, service)
		if err != nil {
			t.Fatalf("Workers: %v", err)
		}
		if i := slices.IndexFunc(ws, func(x cluster.Worker) bool { return x.ID == wc.WorkerID }); i >= 0 {
			return ws[i].Status
		}
		return ""
	}
	enginetest.Eventually(t, "the worker passing in Consul", 20*time.Second, func() bool { return status() == cluster.StatusPassing })

	stopped := make(chan error, 1)
	go func() { stopped <- w.Stop() }()
	enginetest.Eventually(t, "the port to close", 30*time.Second, func() bool {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return false
		}
		if s := status(); s != "" {
			t.Fatalf("port %s refuses connections while Consul lists the worker as %s", addr, s)
		}
		return true
	})
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Stop: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Stop did not return")
	}
	if s := status(); s != "" {
		t.Fatalf("after Stop Consul lists the worker as %s", s)
	}
}
