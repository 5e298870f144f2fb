package enginetest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

var sharedConsul once[string]

// Consul returns the HTTP address of the shared Consul dev agent
// (COUPONPUSH_CONSUL_ADDR or one started once per test binary). Tests keep
// their KV keys, services and locks under a Prefix.
func Consul(t testing.TB) string {
	t.Helper()
	if a := os.Getenv("COUPONPUSH_CONSUL_ADDR"); a != "" {
		return a
	}
	addr, err := sharedConsul.get(func() (string, error) {
		p, err := startShared(t, "consul", consulProcess)
		if err != nil {
			return "", err
		}
		return p.Addr, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// StartConsul starts a Consul dev agent for this test only, stopped at
// t.Cleanup; Addr is its HTTP address. A dev agent keeps its state in
// memory: after Restart it is empty.
func StartConsul(t testing.TB) *Process {
	t.Helper()
	return startPerTest(t, "consul", consulProcess)
}

// consulProcess starts `consul agent -dev` with every port its own (DNS,
// gRPC and WAN off), so that several agents run side by side; it is ready
// once it has elected itself leader, when KV writes succeed.
func consulProcess(dir string) (*Process, error) {
	path, err := binPath("consul")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	httpPort, serf, server := strconv.Itoa(ports[0]), strconv.Itoa(ports[1]), strconv.Itoa(ports[2])
	addr := loopback(ports[0])
	p := &Process{
		Name:    "consul",
		Addr:    addr,
		Dir:     dir,
		LogPath: filepath.Join(dir, "consul.log"),
		path:    path,
		args: []string{
			"agent", "-dev", "-client=127.0.0.1", "-bind=127.0.0.1", "-node=couponpush-" + httpPort,
			"-http-port=" + httpPort, "-serf-lan-port=" + serf, "-server-port=" + server,
			"-dns-port=-1", "-grpc-port=-1", "-grpc-tls-port=-1", "-serf-wan-port=-1",
			"-log-level=warn", "-hcl=disable_update_check = true", "-hcl=connect { enabled = false }",
		},
		ready:        func(ctx context.Context) error { return consulLeader(ctx, addr) },
		readyTimeout: 60 * time.Second,
	}
	return p, p.start()
}

func consulLeader(ctx context.Context, addr string) error {
	body, err := httpGet(ctx, "http://"+addr+"/v1/status/leader", "")
	if err != nil {
		return err
	}
	if body == `""` || body == "" {
		return errors.New("no leader yet")
	}
	return nil
}
